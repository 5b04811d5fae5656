"""deploy/: the Kubernetes manifests, the container image, the nginx and Envoy configurations.

Offline: the manifests are validated against the Kubernetes OpenAPI schemas that
kubernetes-validate ships (strict: an unknown or misspelt field is an error), for the
oldest version with native sidecars and the newest the package knows, and then for the
properties that matter to this product, on what `kubectl apply -k` applies (the
kustomization's generators and images applied here, since kustomize is not installed).
Every value a user must change is in kustomization.yaml. The generated sidecar.toml, with
the environment overrides applied, passes `token-sidecar check-config`. Docker is not run here:
the Dockerfile is checked statically, and its health-check one-liner is run against a real
HTTP server. nginx checks the shipped configuration itself (`nginx -t`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import kubernetes_validate  # type: ignore[import-untyped]  # no stubs, no py.typed
import pytest
import trustme
import yaml
from aiohttp import web

from sidecar.adapters import check_store
from sidecar.core.resource.check import Allowed
from sidecar.core.resource.request import Credentials
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.http.runtime import CONTEXT_PREFIX
from sidecar.settings import ConfigError, StoreSettings, env_variables, settings_from_mapping
from tests.support.nginx import check_config, render_deploy_config, require_nginx
from tests.support.process import SidecarProcess
from tests.support.redis_fixtures import redis_binary
from tests.support.redis_server import RedisProcess, server_args
from tests.support.servers import start_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
EXAMPLE_CONFIG = ROOT / "config" / "sidecar.example.toml"
SIDECAR = "token-sidecar"
CONFIG_DIR = "/etc/token-sidecar"
CONFIG_PATH = f"{CONFIG_DIR}/sidecar.toml"

# Native sidecars (initContainers with restartPolicy: Always) are on by default since 1.29.
OLDEST_KUBERNETES = "1.29.0"
KUBERNETES_VERSIONS = (OLDEST_KUBERNETES, kubernetes_validate.latest_version())


# ---------------------------------------------------------------------------------------
# Loading: what `kubectl apply -k` applies. kustomize is not installed here (nor on PyPI), so
# the two features the kustomization uses are applied as kustomize applies them:
# configMapGenerator (files and literals) and images (newName, newTag). The generated names'
# hash suffixes are left out: kustomize rewrites every reference to them alike.


def kustomization() -> dict[str, Any]:
    [doc] = documents(KUBERNETES / "kustomization.yaml")
    return doc


def manifest_files() -> list[Path]:
    return sorted(p for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def generated_config_maps() -> list[dict[str, Any]]:
    maps = []
    for generator in kustomization().get("configMapGenerator", []):
        data = {Path(name).name: (KUBERNETES / name).read_text(encoding="utf-8")
                for name in generator.get("files", [])}
        data.update(literal.partition("=")[::2] for literal in generator.get("literals", []))
        maps.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": generator["name"]}, "data": data})
    return maps


def workload_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] not in ("Deployment", "StatefulSet"):
        return []
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def image_name(image: str) -> str:
    """The image without its tag or digest, as kustomize's images: matches it."""
    name = image.partition("@")[0]
    return name.rpartition(":")[0] if ":" in name.rpartition("/")[2] else name


def apply_images(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    images = {i["name"]: i for i in kustomization().get("images", [])}
    built = copy.deepcopy(docs)
    for doc in built:
        for container in workload_containers(doc):
            rule = images.get(image_name(container["image"]))
            if rule is not None:
                tag = rule.get("newTag", container["image"].rpartition(":")[2])
                container["image"] = f"{rule.get('newName', rule['name'])}:{tag}"
    return built


def all_resources() -> list[dict[str, Any]]:
    listed = [doc for name in kustomization()["resources"]
              for doc in documents(KUBERNETES / name)]
    return apply_images(listed) + generated_config_maps()


def resource(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for doc in all_resources() if doc["kind"] == kind
             and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''} in deploy/kubernetes, " \
                            f"found {len(found)}"
    return found[0]


APP = "authorization-server"
REDIS = "token-sidecar-redis"
CONFIG_MAP = "token-sidecar-config"
ENVIRONMENT_MAP = "token-sidecar-environment"


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = resource("Deployment")["spec"]["template"]["spec"]
    return spec


def sidecar_container() -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in pod_spec().get("initContainers", [])
                                   if c["name"] == SIDECAR]
    assert len(found) == 1, f"expected the {SIDECAR} initContainer, found {len(found)}"
    return found[0]


def all_containers() -> list[dict[str, Any]]:
    return [c for doc in all_resources() for c in workload_containers(doc)]


def sidecar_toml() -> str:
    text: str = resource("ConfigMap", CONFIG_MAP)["data"]["sidecar.toml"]
    return text


def sidecar_config() -> dict[str, Any]:
    return tomllib.loads(sidecar_toml())


def port_of(listen: str) -> int:
    return int(listen.rpartition(":")[2])


def container_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def secret_values() -> dict[str, str]:
    secret = resource("Secret")
    values: dict[str, str] = dict(secret.get("stringData", {}))
    return values


def environment_of(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom ConfigMaps, then env,
    secrets resolved, $(VAR) expanded."""
    secrets = secret_values()
    secret_name = resource("Secret")["metadata"]["name"]
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(resource("ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            value = expand(variable["value"], environment)
        else:
            ref = variable["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret_name, f"{variable['name']}: unknown Secret {ref['name']}"
            assert ref["key"] in secrets, f"{variable['name']}: the Secret has no {ref['key']}"
            value = secrets[ref["key"]]
        environment[variable["name"]] = value
    return environment


def expand(value: str, environment: dict[str, str]) -> str:
    expanded = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                      lambda m: environment.get(m.group(1), m.group(0)), value)
    assert "$(" not in expanded, f"{value}: refers to an undefined variable"
    return expanded


def sidecar_environment() -> dict[str, str]:
    return environment_of(sidecar_container())


def mounted_secret_files(container: dict[str, Any], spec: dict[str, Any]) -> dict[str, str]:
    """Path in the container -> the Secret key mounted there."""
    volumes = {v["name"]: v for v in spec["volumes"]}
    secret_name = resource("Secret")["metadata"]["name"]
    provided = {}
    for mount in container["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret:
            assert secret["secretName"] == secret_name
            for item in secret["items"]:
                provided[f"{mount['mountPath']}/{item['path']}"] = item["key"]
    return provided


# ---------------------------------------------------------------------------------------
# Kubernetes: schemas.


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schemas(path: Path, version: str) -> None:
    docs = documents(path)
    assert docs, f"{path.name} holds no resource"
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} ({doc['kind']}) is not valid for Kubernetes {version}: "
                        f"{exc.message} at {'.'.join(map(str, exc.path))}", pytrace=False)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_generated_config_maps_are_valid(version: str) -> None:
    maps = generated_config_maps()
    assert {m["metadata"]["name"] for m in maps} == {CONFIG_MAP, ENVIRONMENT_MAP}
    for doc in maps:
        kubernetes_validate.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    assert kustomization()["kind"] == "Kustomization"
    assert sorted(kustomization()["resources"]) == [p.name for p in manifest_files()]
    generated = [name for g in kustomization()["configMapGenerator"] for name in g.get("files", [])]
    assert generated == ["sidecar.toml"]
    assert (KUBERNETES / "sidecar.toml").is_file()


def test_every_image_is_set_in_the_kustomization() -> None:
    images = {i["name"]: i for i in kustomization()["images"]}
    listed = [doc for name in kustomization()["resources"] for doc in documents(KUBERNETES / name)]
    containers = [c for doc in listed for c in workload_containers(doc)]
    assert {c["image"] for c in containers} == set(images), "every image, and only those"
    for rule in images.values():
        assert rule.get("newName") and rule.get("newTag"), rule["name"]
    for container in all_containers():
        repository, _, tag = container["image"].rpartition(":")
        assert "/" in repository and tag, container["image"]
    # What no user can pull (the sidecar is not published) is marked for them.
    text = (KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8")
    for rule in images.values():
        if "example" in rule["newName"]:
            before = text[:text.index(f"- name: {rule['name']}\n")]
            assert "# CHANGE" in before.rsplit("\n  - name:", 1)[-1], rule["name"]


def test_every_value_to_change_is_in_the_kustomization() -> None:
    """The example domain and registry appear nowhere but in kustomization.yaml; CHANGE marks
    appear only there and in the two files its header names."""
    header = (KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8").split("apiVersion")[0]
    for path in KUBERNETES.iterdir():
        text = path.read_text(encoding="utf-8")
        if path.name != "kustomization.yaml":
            assert "example.com" not in text, path.name
            if "CHANGE" in text:
                assert path.name in header, path.name
    environment = resource("ConfigMap", ENVIRONMENT_MAP)["data"]
    assert environment["TOKEN_SIDECAR_SERVER_PUBLIC_TOKEN_ENDPOINT"].startswith("https://")
    assert {"server.public_token_endpoint", "server.issuer", "trust.trusted_proxies",
            "store.url"} <= {env_variables()[name] for name in environment}
    config = sidecar_config()
    assert "public_token_endpoint" not in config["server"]  # one place only
    assert "trusted_proxies" not in config["trust"]
    assert "url" not in config["store"]


def test_every_resource_has_a_name_and_no_namespace() -> None:
    # The namespace is the user's choice (kubectl -n, or kustomize's namespace:).
    for doc in all_resources():
        assert doc["metadata"]["name"]
        assert "namespace" not in doc["metadata"], doc["metadata"]["name"]


# ---------------------------------------------------------------------------------------
# Kubernetes: what the product relies on.


def test_the_sidecar_is_a_native_sidecar() -> None:
    assert sidecar_container()["restartPolicy"] == "Always"
    assert SIDECAR not in [c["name"] for c in pod_spec()["containers"]]
    assert pod_spec()["containers"], "the authorization server container is missing"


def test_the_sidecar_runs_the_configured_file() -> None:
    container = sidecar_container()
    assert container.get("args") == ["serve", "--config", CONFIG_PATH]
    assert "command" not in container  # the image's ENTRYPOINT: token-sidecar
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    [config_mount] = [m for m in mounts.values()
                      if "configMap" in volumes[m["name"]]]
    assert config_mount["mountPath"] == CONFIG_DIR
    assert config_mount.get("readOnly") is True
    config_map = volumes[config_mount["name"]]["configMap"]
    assert config_map["name"] == CONFIG_MAP
    assert {"key": "sidecar.toml", "path": "sidecar.toml"} in config_map["items"]


def test_probes_ask_the_admin_port() -> None:
    container = sidecar_container()
    admin_port = port_of(sidecar_config()["server"]["admin_listen"])
    expected = {"startupProbe": "/startupz", "livenessProbe": "/livez", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert container_port(container, get["port"]) == admin_port, probe
    assert container_port(container, "http") == port_of(sidecar_config()["server"]["listen"])


def test_containers_are_locked_down() -> None:
    pod = pod_spec()["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod_spec()["automountServiceAccountToken"] is False
    for container in all_containers():
        name = container["name"]
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["capabilities"]["drop"] == ["ALL"], name
        assert "add" not in context["capabilities"], name
        assert context["seccompProfile"]["type"] == "RuntimeDefault", name
    # A read-only root file system, and a writable /tmp of the sidecar's own.
    tmp = [m for m in sidecar_container()["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert len(tmp) == 1


def test_every_container_has_requests_and_limits() -> None:
    for container in all_containers():
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) >= {"cpu", "memory"}, (
                container["name"], kind)


def test_prometheus_scrapes_the_admin_port() -> None:
    annotations = resource("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(
        port_of(sidecar_config()["server"]["admin_listen"]))
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_service_sends_traffic_to_the_sidecar_only() -> None:
    service = resource("Service", APP)
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    listen = port_of(sidecar_config()["server"]["listen"])
    admin = port_of(sidecar_config()["server"]["admin_listen"])
    targets = [container_port(sidecar_container(), p["targetPort"])
               for p in service["spec"]["ports"]]
    assert targets == [listen]
    assert admin not in targets  # /metrics is for Prometheus, not for clients
    # The authorization server is the sidecar's upstream on loopback, reachable only through it.
    assert sidecar_config()["upstream"]["url"] == "http://127.0.0.1:9000"


def test_the_disruption_budget_covers_the_pods_and_allows_an_eviction() -> None:
    budget = resource("PodDisruptionBudget")
    deployment = resource("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_the_network_policy_guards_the_trusted_proxy_header() -> None:
    policy = resource("NetworkPolicy", APP)
    pod_labels = resource("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    server = sidecar_config()["server"]
    assert ports == {port_of(server["listen"]), port_of(server["admin_listen"])}
    for rule in policy["spec"]["ingress"]:
        assert rule["from"], "every rule names who may connect"


def test_shutdown_fits_in_the_grace_period() -> None:
    spec = pod_spec()
    pause = sum(c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
                for c in spec["containers"])
    grace = sidecar_config()["server"]["shutdown_grace_seconds"]
    assert spec["terminationGracePeriodSeconds"] > grace + pause


def test_secrets_come_from_the_secret() -> None:
    config = sidecar_config()
    provided = mounted_secret_files(sidecar_container(), pod_spec())
    nonce_file = config["dpop"]["nonce_secret_file"]
    assert nonce_file in provided, "dpop.nonce_secret_file is not a mounted Secret file"
    nonce_lines = [line.strip() for line in secret_values()[provided[nonce_file]].splitlines()
                   if line.strip()]
    assert nonce_lines and all(len(line) >= 32 for line in nonce_lines)
    # The Redis password is a file, never part of store.url (so any character will do).
    assert provided[config["store"]["password_file"]] == "redis-password"
    password = secret_values()["redis-password"]
    assert password not in sidecar_environment()["TOKEN_SIDECAR_STORE_URL"]
    for config_map in generated_config_maps():
        assert password not in json.dumps(config_map)


def test_the_shipped_redis_requires_the_secret_password() -> None:
    redis = resource("StatefulSet", REDIS)
    [container] = workload_containers(redis)
    arguments = [expand(a, environment_of(container)) for a in container["args"]]
    password = secret_values()["redis-password"]
    assert arguments[arguments.index("--requirepass") + 1] == password
    assert arguments[arguments.index("--maxmemory-policy") + 1] == "noeviction"
    assert arguments[arguments.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"], "bindings survive a restart"
    # store.url names the Redis Service and its port.
    service = resource("Service", REDIS)
    assert redis["spec"]["serviceName"] == REDIS
    assert service["spec"]["selector"].items() <= \
        redis["spec"]["template"]["metadata"]["labels"].items()
    store = urlsplit(sidecar_environment()["TOKEN_SIDECAR_STORE_URL"])
    assert (store.scheme, store.hostname, store.port) == (
        "redis", REDIS, service["spec"]["ports"][0]["port"])
    # Only the authorization server's pods reach it.
    policy = resource("NetworkPolicy", REDIS)
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
        redis["spec"]["template"]["metadata"]["labels"].items()
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert peer == {"podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}}}
    assert [p["port"] for p in rule["ports"]] == [6379]


def test_the_other_store_urls_the_kustomization_suggests_are_valid() -> None:
    text = (KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8")
    urls = re.findall(r"#.*?:\s+(redis(?:s|\+sentinel|\+cluster)?://\S+)", text)
    assert {urlsplit(u).scheme for u in urls} >= {"redis", "redis+sentinel", "redis+cluster"}
    for url in urls:
        check_store(StoreSettings(url=url))


def test_environment_overrides_name_real_config_keys() -> None:
    overrides = [n for n in sidecar_environment() if n.startswith("TOKEN_SIDECAR_")]
    assert overrides
    assert set(overrides) <= set(env_variables()), set(overrides) - set(env_variables())
    assert pod_spec()["enableServiceLinks"] is False


def keys_of(config: dict[str, Any]) -> set[str]:
    return {f"{section}.{key}" for section, table in config.items() for key in table}


def test_the_configmap_uses_the_example_configs_keys() -> None:
    example = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    assert keys_of(sidecar_config()) <= keys_of(example)


def mount_secrets(root: Path, text: str) -> str:
    """Write the sidecar's Secret volumes under `root`, as the kubelet mounts them, and point
    the configuration text at them."""
    volumes = {v["name"]: v for v in pod_spec()["volumes"]}
    values = secret_values()
    for mount in sidecar_container()["volumeMounts"]:
        secret = volumes[mount["name"]].get("secret")
        if not secret:
            continue
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True)
        for item in secret["items"]:
            (directory / item["path"]).write_text(values[item["key"]], encoding="utf-8")
        text = text.replace(f'"{mount["mountPath"]}/', f'"{directory}/')
    return text


def test_the_configmap_passes_check_config(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.toml"
    path.write_text(mount_secrets(tmp_path / "mounts", sidecar_toml()), encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_SIDECAR_")}
    environment.update(sidecar_environment())
    result = subprocess.run(
        [sys.executable, "-m", "sidecar.cli", "check-config", "--config", str(path)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same, in process: the overrides land where they are meant to.
    settings = settings_from_mapping(sidecar_config(), sidecar_environment())
    assert settings.server.public_token_endpoint == "https://as.example.com/token"
    assert settings.store.url == sidecar_environment()["TOKEN_SIDECAR_STORE_URL"]
    assert settings.trust.client_cert_format == "nginx"


async def test_the_sidecar_reaches_the_shipped_redis_with_the_secret_password(
        tmp_path: Path) -> None:
    """redis.yaml's arguments on a real redis-server, the sidecar's configuration as the pod
    gets it (the Secret's files mounted, the environment applied): /readyz says the store
    answers, so the password went from the file to requirepass's check."""
    [container] = workload_containers(resource("StatefulSet", REDIS))
    arguments = [expand(a, environment_of(container)) for a in container["args"]]
    at = arguments.index("--dir")
    del arguments[at:at + 2]  # the test's own directory instead of the volume
    password = secret_values()["redis-password"]
    redis = RedisProcess(lambda p: server_args(p, *arguments), binary=redis_binary(),
                         password=password)
    with redis:
        assert redis.client().config_get("requirepass") == {"requirepass": password}
        text = mount_secrets(tmp_path / "mounts", sidecar_toml())
        sections = tomllib.loads(text)
        environment = sidecar_environment()
        store_url = environment["TOKEN_SIDECAR_STORE_URL"].replace(
            f"{REDIS}:6379", f"127.0.0.1:{redis.port}")
        sections["store"]["url"] = store_url
        for name in ("listen", "admin_listen"):  # free ports (SidecarProcess's)
            del sections["server"][name]
        sections["server"]["public_token_endpoint"] = \
            environment["TOKEN_SIDECAR_SERVER_PUBLIC_TOKEN_ENDPOINT"]
        sidecar = SidecarProcess(tmp_path / "sidecar.toml", sections)
        try:
            await sidecar.start()  # waits for /readyz 200
            async with aiohttp.ClientSession() as session, session.get(
                    sidecar.admin_url + "/readyz") as response:
                assert (await response.json())["checks"]["store"] == "ok"
        finally:
            await sidecar.stop()
        assert password not in "\n".join(sidecar.output)


def test_check_config_would_catch_a_broken_configmap() -> None:
    broken = sidecar_config()
    broken["trust"]["client_cert_format"] = "apache"
    with pytest.raises(ConfigError, match=r"trust\.client_cert_format"):
        settings_from_mapping(broken, {})


# ---------------------------------------------------------------------------------------
# The container image (Docker is not available here: a static reading).


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, line continuations joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends in a line continuation"
    pairs = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, arguments))
    return result


def final_stage() -> list[tuple[str, str]]:
    return stages()[-1]


def final_base() -> str:
    """The final stage's base image, its ARG defaults substituted."""
    args = dict(a.partition("=")[::2] for name, a in dockerfile_instructions() if name == "ARG")
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final_stage()[0][1])


def only(stage: list[tuple[str, str]], instruction: str) -> str:
    found = [arguments for name, arguments in stage if name == instruction]
    assert len(found) == 1, f"expected one {instruction} in the final stage, found {found}"
    return found[0]


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)  # shell form is not JSON: this raises
    assert isinstance(value, list)
    assert all(isinstance(v, str) for v in value)
    return value


def test_the_image_is_built_in_stages() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    assert re.search(r"\bAS builder$", all_stages[0][0][1], re.IGNORECASE)
    copies = [a for name, a in final_stage() if name == "COPY"]
    assert any(a.startswith("--from=builder ") for a in copies)
    # Nothing is installed or run in the final stage: no pip, and no shell needed to build it.
    assert [name for name, _ in final_stage() if name == "RUN"] == []
    assert "distroless" in final_base() or "slim" in final_base()


def test_the_runtime_base_is_python_311_or_later() -> None:
    # Debian 12's python3 is 3.11, in the distroless image as in the builder's venv.
    assert final_base().startswith("gcr.io/distroless/python3-debian12")
    assert stages()[0][0][1].startswith("${DEBIAN_IMAGE}")
    assert "debian:12" in dict(a.partition("=")[::2] for name, a in dockerfile_instructions()
                               if name == "ARG")["DEBIAN_IMAGE"]


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    user = only(final_stage(), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    deployment_uid = pod_spec()["securityContext"]["runAsUser"]
    assert int(uid) == deployment_uid


def test_the_image_starts_without_a_shell() -> None:
    entrypoint = exec_form(only(final_stage(), "ENTRYPOINT"))
    command = exec_form(only(final_stage(), "CMD"))
    assert Path(entrypoint[0]).name == "token-sidecar"
    assert [*entrypoint[1:], *command] == ["serve", "--config", CONFIG_PATH]
    assert "/bin/sh" not in entrypoint


def test_the_image_writes_no_bytecode_and_exposes_both_ports() -> None:
    env = " ".join(a for name, a in final_stage() if name == "ENV")
    assert re.search(r"\bPYTHONDONTWRITEBYTECODE=1\b", env)
    exposed = set(" ".join(a for name, a in final_stage() if name == "EXPOSE").split())
    assert exposed == {"8080", "9090"}


def healthcheck_command() -> list[str]:
    healthcheck = only(final_stage(), "HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD ")
    assert options.strip().startswith("--")
    return exec_form(command)


def test_the_healthcheck_needs_no_shell_or_curl() -> None:
    argv = healthcheck_command()
    assert Path(argv[0]).name.startswith("python")
    assert argv[1] == "-c"
    assert "http://127.0.0.1:9090/livez" in argv[2]
    assert not {"sh", "bash", "curl", "wget"} & {Path(a).name for a in argv}
    # The interpreter of the virtualenv that holds token-sidecar, not whatever is on PATH.
    entrypoint = exec_form(only(final_stage(), "ENTRYPOINT"))
    assert Path(argv[0]).parent == Path(entrypoint[0]).parent


@pytest.fixture
async def livez() -> AsyncIterator[tuple[str, list[int]]]:
    status = [200]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=status[0], text="ok")

    app = web.Application()
    app.router.add_get("/livez", answer)
    runner, url = await start_app(app)
    yield url, status
    await runner.cleanup()


async def run_healthcheck(url: str) -> int:
    code = healthcheck_command()[2].replace("http://127.0.0.1:9090", url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_the_healthcheck_passes_on_200_and_fails_otherwise(
        livez: tuple[str, list[int]]) -> None:
    url, status = livez
    assert await run_healthcheck(url) == 0
    status[0] = 503
    assert await run_healthcheck(url) != 0
    assert await run_healthcheck("http://127.0.0.1:1") != 0  # nothing listens


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore  # an allow-list: nothing else reaches the build
    for name, arguments in dockerfile_instructions():
        if name == "COPY" and not arguments.startswith("--from="):
            *sources, _ = shlex.split(arguments)
            for source in sources:
                assert source.rstrip("/") in allowed, source
                assert (ROOT / source).exists(), source


# ---------------------------------------------------------------------------------------
# Envoy (not installed here: the settings the sidecar depends on, read from the YAML).


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def typed(config: Any, suffix: str) -> list[dict[str, Any]]:
    return [n for n in walk(config) if str(n.get("@type", "")).endswith(suffix)]


def test_envoy_passes_the_client_certificate_as_xfcc() -> None:
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy.yaml").read_text(encoding="utf-8"))
    [tls] = typed(config, ".tls.v3.DownstreamTlsContext")
    assert tls["require_client_certificate"] is False
    validation = tls["common_tls_context"]["validation_context"]
    assert validation["trust_chain_verification"] == "ACCEPT_UNTRUSTED"
    [manager] = typed(config, ".http_connection_manager.v3.HttpConnectionManager")
    assert manager["forward_client_cert_details"] == "SANITIZE_SET"
    assert manager["set_current_client_cert_details"] == {
        "cert": True, "chain": True, "subject": True, "uri": True, "dns": True}
    assert manager["use_remote_address"] is True
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    routes = [r for r in walk(manager["route_config"]) if "cluster" in r]
    assert routes
    for route in routes:
        addresses = [n for n in walk(clusters[route["cluster"]]["load_assignment"])
                     if "port_value" in n]
        assert addresses == [{"address": "127.0.0.1", "port_value": 8080}]
    # What the comment tells the sidecar to use is a valid sidecar configuration.
    settings = settings_from_mapping({
        "server": {"public_token_endpoint": "https://as.example.com/token"},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "trust": {"client_cert_format": "envoy-xfcc",
                  "client_cert_header": "X-Forwarded-Client-Cert"},
    }, {})
    assert settings.trust.client_cert_format == "envoy-xfcc"


def _matches(patterns: list[dict[str, str]], name: str) -> bool:
    name = name.lower()
    return any(name == p.get("exact") or name.startswith(p.get("prefix", "\0"))
               for p in patterns)


def test_envoy_asks_the_resource_check_listener_with_ext_authz() -> None:
    config = yaml.safe_load((DEPLOY / "envoy" / "envoy-resource.yaml").read_text(
        encoding="utf-8"))
    [manager] = typed(config, ".http_connection_manager.v3.HttpConnectionManager")
    assert manager["forward_client_cert_details"] == "SANITIZE_SET"
    assert manager["common_http_protocol_options"]["headers_with_underscores_action"] == \
        "REJECT_REQUEST"
    filters = [f["name"] for f in manager["http_filters"]]
    assert filters == ["envoy.filters.http.ext_authz", "envoy.filters.http.router"]
    [authz] = typed(config, ".ext_authz.v3.ExtAuthz")
    assert authz["failure_mode_allow"] is False  # fail closed
    assert "with_request_body" not in authz  # the check needs headers only
    service = authz["http_service"]
    assert "path_prefix" not in service  # the original path is the one a proof names
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    addresses = [n for n in walk(clusters[service["server_uri"]["cluster"]]) if "port_value" in n]
    assert addresses == [{"address": "127.0.0.1", "port_value": 8181}]
    asked = service["authorization_request"]["allowed_headers"]["patterns"]
    for name in ("authorization", "DPoP", "x-forwarded-client-cert", "X-Token-Admin"):
        assert _matches(asked, name), name
    # Headers another door reads as the original request must not pass from the client.
    for name in ("X-Original-URI", "X-Original-Method", "X-Forwarded-Uri", "X-Forwarded-Method"):
        assert not _matches(asked, name), name
    answer = service["authorization_response"]
    # Everything the sidecar gives an allowed request reaches the API...
    allowed = Allowed(Credentials("DPoP", "t"), TokenFacts(
        "recorded", jkt="k", x5t_s256="c", client_id="a", subject="s", scope="r"),
        jkt="k", cert_s256="c", replay=None, result_code="resource.allowed")
    for name in ["Authorization", *(CONTEXT_PREFIX + n for n, _ in allowed.context())]:
        assert _matches(answer["allowed_upstream_headers"]["patterns"], name), name
    # ... and what a refused client needs to retry reaches the client.
    for name in ("WWW-Authenticate", "DPoP-Nonce", "Retry-After"):
        assert _matches(answer["allowed_client_headers"]["patterns"], name), name
    settings = settings_from_mapping({
        "server": {"public_token_endpoint": "https://as.example.com/token"},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "resource": {"enabled": True, "public_origin": "https://api.example.com",
                     "check_listen": "127.0.0.1:8181"},
        "trust": {"client_cert_format": "envoy-xfcc",
                  "client_cert_header": "X-Forwarded-Client-Cert"},
    }, {})
    assert settings.resource.check_listen == "127.0.0.1:8181"


def test_nginx_resource_example_asks_before_it_forwards() -> None:
    text = (DEPLOY / "nginx" / "token-sidecar-resource.conf").read_text(encoding="utf-8")
    directives = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "auth_request /_token_sidecar_check;" in directives
    assert "proxy_set_header X-Original-URI    $request_uri;" in directives
    assert "proxy_set_header X-Original-Method $request_method;" in directives
    assert "proxy_set_header Authorization $token_authorization;" in directives
    assert 'proxy_set_header DPoP "";' in directives
    assert "add_header WWW-Authenticate $token_www_authenticate always;" in directives
    assert "proxy_pass_request_body off;" in directives
    assert "internal;" in directives


# ---------------------------------------------------------------------------------------
# nginx.

NGINX_CONF = DEPLOY / "nginx" / "token-sidecar.conf"


def test_nginx_passes_the_client_certificate_and_cannot_be_fooled() -> None:
    text = NGINX_CONF.read_text(encoding="utf-8")
    directives = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    assert "ssl_verify_client optional_no_ca;" in directives
    assert "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;" in directives
    assert "proxy_http_version 1.1;" in directives
    assert 'proxy_set_header Connection "";' in directives
    assert any(re.fullmatch(r"keepalive \d+;", d) for d in directives)
    assert "proxy_pass http://token_sidecar;" in directives
    assert "server 127.0.0.1:8080;" in directives


def test_nginx_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    binary = require_nginx()
    ca = trustme.CA()
    server = ca.issue_cert("as.example.com")
    certificate, key = tmp_path / "server.pem", tmp_path / "server.key"
    certificate.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key))
    http_context = render_deploy_config(listen="127.0.0.1:8443", sidecar="127.0.0.1:8080",
                                        certificate=certificate, key=key)
    result = check_config(binary, tmp_path / "nginx", http_context)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert "[warn]" not in result.stderr, result.stderr
