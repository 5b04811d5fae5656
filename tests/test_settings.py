"""Configuration: file, environment overrides, every problem named by its key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.settings import ConfigError, load_settings, settings_from_mapping

EXAMPLE = Path(__file__).parent.parent / "config" / "sidecar.example.toml"
MINIMAL = {"server": {"public_token_endpoint": "https://as.example.com/token"},
           "upstream": {"url": "http://127.0.0.1:9000"}}


def test_example_config_is_valid() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.server.public_token_endpoint == "https://as.example.com/token"
    assert settings.trust.client_cert_format == "nginx"


def test_defaults() -> None:
    settings = settings_from_mapping(MINIMAL, {})
    assert settings.server.listen == "0.0.0.0:8080"
    assert settings.server.token_path == "/token"
    assert settings.server.max_body_bytes == 65536
    assert (settings.server.token_path_match, settings.server.token_query_allowed) == \
        ("lenient", ())
    assert (settings.server.header_timeout_seconds, settings.server.body_timeout_seconds,
            settings.server.keepalive_timeout_seconds) == (10, 10, 75)
    assert settings.server.max_connections == 1024
    assert settings.server.admin_max_connections == 64
    assert settings.store.url == "memory://"
    assert settings.issuer == "https://as.example.com"


def test_environment_overrides_every_kind_of_key() -> None:
    settings = settings_from_mapping(MINIMAL, {
        "TOKEN_SIDECAR_UPSTREAM_URL": "http://upstream:9001",
        "TOKEN_SIDECAR_UPSTREAM_TIMEOUT_SECONDS": "2.5",
        "TOKEN_SIDECAR_SERVER_MAX_BODY_BYTES": "1000",
        "TOKEN_SIDECAR_DPOP_REQUIRED": "true",
        "TOKEN_SIDECAR_TRUST_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16",
        "TOKEN_SIDECAR_DPOP_ALGORITHMS": '["ES256"]',
    })
    assert settings.upstream.url == "http://upstream:9001"
    assert settings.upstream.timeout_seconds == 2.5
    assert settings.server.max_body_bytes == 1000
    assert settings.dpop.required is True
    assert settings.trust.trusted_proxies == ("10.0.0.0/8", "192.168.0.0/16")
    assert settings.dpop.algorithms == ("ES256",)


def test_required_keys_can_come_from_the_environment() -> None:
    settings = settings_from_mapping({}, {
        "TOKEN_SIDECAR_SERVER_PUBLIC_TOKEN_ENDPOINT": "https://as.example.com/token",
        "TOKEN_SIDECAR_UPSTREAM_URL": "http://127.0.0.1:9000"})
    assert settings.upstream.url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(("raw", "environ", "expected"), [
    ({"server": {"bogus": 1}}, {}, "server.bogus: unknown key"),
    ({"nope": {}}, {}, "nope: unknown section"),
    ({"server": {"listen": "8080"}}, {}, "server.listen: expected HOST:PORT"),
    ({"server": {"max_body_bytes": "big"}}, {}, "server.max_body_bytes: expected int"),
    ({"server": {"max_body_bytes": True}}, {}, "server.max_body_bytes: expected an integer"),
    ({"upstream": {"url": "ftp://x"}}, {}, "upstream.url: expected an absolute http(s) URL"),
    ({"trust": {"trusted_proxies": ["10.0.0.0/33"]}}, {}, "trust.trusted_proxies: not a CIDR"),
    ({"trust": {"client_cert_format": "iis"}}, {}, "trust.client_cert_format: must be one of"),
    ({"trust": {"drop_headers": ["X-Ok", "X Bad"]}}, {}, "trust.drop_headers: not header"),
    ({"trust": {"drop_headers": ["X-*-Mid"]}}, {}, "trust.drop_headers: not header names"),
    ({"store": {"url": "mysql://x"}}, {}, "store.url: scheme must be one of"),
    ({"server": {"max_in_flight": 0}}, {}, "server.max_in_flight: must be greater than 0"),
    ({"server": {"max_queued": -1}}, {}, "server.max_queued: must not be negative"),
    ({"server": {"queue_timeout_seconds": 0}}, {}, "server.queue_timeout_seconds: must be"),
    ({"store": {"warm_connections": 0}}, {}, "store.warm_connections: must be greater"),
    ({"store": {"warm_connections": 101}}, {}, "store.warm_connections: must not exceed"),
    ({"store": {"keepalive_seconds": 0}}, {}, "store.keepalive_seconds: must be greater"),
    ({"store": {"memory_when_full": "drop"}}, {}, "store.memory_when_full: must be one of"),
    ({"grants": {"allowed": ["implicit"]}}, {}, "grants.allowed: unknown values"),
    ({"server": {"header_timeout_seconds": 0}}, {}, "server.header_timeout_seconds: must be"),
    ({"server": {"body_timeout_seconds": -1}}, {}, "server.body_timeout_seconds: must be"),
    ({"server": {"keepalive_timeout_seconds": 7200}}, {},
     "server.keepalive_timeout_seconds: must be greater than 0 and at most 3600"),
    ({"server": {"max_connections": 0}}, {}, "server.max_connections: must be"),
    ({"server": {"admin_max_connections": 0}}, {}, "server.admin_max_connections: must be"),
    ({}, {"TOKEN_SIDECAR_DPOP_REQUIRED": "maybe"}, "dpop.required (from TOKEN_SIDECAR_DPOP_"),
    # Request targets (issue 13): a guarded path must be reachable, the URL's query harmless.
    ({"server": {"token_path_match": "loose"}}, {}, "server.token_path_match: must be one of"),
    ({"server": {"gc": "off"}}, {}, "server.gc: must be one of tuned, python"),
    ({"server": {"token_query_allowed": ["tenant", "Grant.Type"]}}, {},
     "server.token_query_allowed: ['Grant.Type'] read as token request parameters"),
    ({"server": {"token_query_allowed": [""]}}, {}, "server.token_query_allowed: an empty"),
    ({"server": {"token_path": "/oauth/../token"}}, {}, "server.token_path: The path contains"),
    ({"server": {"token_path": "/token?x=1"}}, {}, "server.token_path: a path without a query"),
    ({"dpop": {"par_path": "/par;x"}}, {}, "dpop.par_path: The path contains ';'"),
    ({"upstream": {"url": "http://up.example/?x=1"}}, {}, "upstream.url: a URL with a query"),
    ({"upstream": {"url": "http://u:p@up.example"}}, {}, "upstream.url: a URL with user info"),
])
def test_problems_name_the_key(raw: dict[str, dict[str, object]], environ: dict[str, str],
                               expected: str) -> None:
    merged = {name: {**MINIMAL.get(name, {}), **raw.get(name, {})}
              for name in {*MINIMAL, *raw}}
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(merged, environ)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
    assert not any("s3cret" in p for p in caught.value.problems)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping({"server": {"listen": "x", "bogus": 1}}, {})
    keys = {p.split(":")[0] for p in caught.value.problems}
    assert {"server.listen", "server.bogus", "server.public_token_endpoint", "upstream.url"} <= keys


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_a_misspelt_environment_variable_names_the_closest_key() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(MINIMAL, {"TOKEN_SIDECAR_STORE_UR": "redis://redis:6379/0"})
    assert caught.value.problems == [
        "TOKEN_SIDECAR_STORE_UR: unknown environment variable; did you mean "
        "TOKEN_SIDECAR_STORE_URL (store.url)?"]


def test_an_unknown_environment_variable_with_no_close_key_is_refused_too() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(MINIMAL, {"TOKEN_SIDECAR_COLOUR": "blue", "OTHER_VARIABLE": "x"})
    [problem] = caught.value.problems
    assert problem.startswith("TOKEN_SIDECAR_COLOUR: unknown environment variable")


def test_kubernetes_service_links_are_not_taken_for_misspelt_keys() -> None:
    # What a Service named token-sidecar (or token-sidecar-redis) puts in every pod's
    # environment when enableServiceLinks is on, as it is by default.
    links = {"TOKEN_SIDECAR_SERVICE_HOST": "10.0.0.7", "TOKEN_SIDECAR_SERVICE_PORT": "8080",
             "TOKEN_SIDECAR_SERVICE_PORT_HTTP": "8080",
             "TOKEN_SIDECAR_PORT": "tcp://10.0.0.7:8080",
             "TOKEN_SIDECAR_PORT_8080_TCP": "tcp://10.0.0.7:8080",
             "TOKEN_SIDECAR_PORT_8080_TCP_PROTO": "tcp",
             "TOKEN_SIDECAR_PORT_8080_TCP_PORT": "8080",
             "TOKEN_SIDECAR_PORT_8080_TCP_ADDR": "10.0.0.7",
             "TOKEN_SIDECAR_REDIS_SERVICE_HOST": "10.0.0.8",
             "TOKEN_SIDECAR_REDIS_PORT_6379_TCP_ADDR": "10.0.0.8"}
    settings = settings_from_mapping(MINIMAL, links)
    assert settings.upstream.url == "http://127.0.0.1:9000"
    with pytest.raises(ConfigError, match="TOKEN_SIDECAR_UPSTREAM_PRESERVE_HOTS"):
        settings_from_mapping(MINIMAL, {**links, "TOKEN_SIDECAR_UPSTREAM_PRESERVE_HOTS": "1"})


def test_nested_keys_have_their_variables() -> None:
    settings = settings_from_mapping(
        MINIMAL, {"TOKEN_SIDECAR_GRANTS_JWT_BEARER_LEEWAY_SECONDS": "5"})
    assert settings.grants.jwt_bearer.leeway_seconds == 5


PATH_KEYS = {"clients": "registry_file", "dpop": "nonce_secret_file",
             "attestation": "challenge_secret_file", "store": "password_file"}


@pytest.mark.parametrize("from_environment", [False, True], ids=["file", "environment"])
def test_relative_paths_are_relative_to_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_environment: bool) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    sections = {name: dict(values) for name, values in MINIMAL.items()}
    environ: dict[str, str] = {}
    for section, name in PATH_KEYS.items():
        if from_environment:
            environ[f"TOKEN_SIDECAR_{section}_{name}".upper()] = f"secrets/{name}"
        else:
            sections.setdefault(section, {})[name] = f"secrets/{name}"
    config = config_dir / "sidecar.toml"
    config.write_text("".join(
        f"[{section}]\n" + "".join(f'{k} = "{v}"\n' for k, v in values.items())
        for section, values in sections.items()))
    settings = load_settings(config, environ=environ)
    for section, name in PATH_KEYS.items():
        assert getattr(getattr(settings, section), name) == str(config_dir / "secrets" / name)
    assert settings.store.tls_ca_file == ""  # an unset path stays unset


def test_the_store_password_file_is_read_relative_to_the_config_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sidecar.adapters.redis.store import RedisStore  # noqa: PLC0415 - this test only

    (tmp_path / "redis-password").write_text("s3cret\n")
    config = tmp_path / "sidecar.toml"
    config.write_text('[server]\npublic_token_endpoint = "https://as.example.com/token"\n'
                      '[upstream]\nurl = "http://127.0.0.1:9000"\n'
                      '[store]\nurl = "redis://127.0.0.1:6379/0"\n')
    monkeypatch.chdir(tmp_path.parent)
    environ = {"TOKEN_SIDECAR_STORE_PASSWORD_FILE": "redis-password"}
    settings = load_settings(config, environ=environ)
    RedisStore.check_settings(settings.store)  # raises ValueError when the file is not found


def test_relative_paths_follow_the_config_files_name_not_its_symlinks(tmp_path: Path) -> None:
    # The layout of a Kubernetes ConfigMap volume: every file is a link through ..data to a
    # timestamped directory, which the kubelet replaces (and deletes) on every update.
    mount = tmp_path / "etc" / "token-sidecar"
    version = mount / "..2026_12_03_08_00_00.000000001"
    version.mkdir(parents=True)
    (mount / "..data").symlink_to(version.name)
    for name in ("sidecar.toml", "clients.toml"):
        (mount / name).symlink_to(f"..data/{name}")
    (version / "clients.toml").write_text("")
    (version / "sidecar.toml").write_text(
        '[server]\npublic_token_endpoint = "https://as.example.com/token"\n'
        '[upstream]\nurl = "http://127.0.0.1:9000"\n[clients]\nregistry_file = "clients.toml"\n')
    settings = load_settings(mount / "sidecar.toml", environ={})
    assert settings.clients.registry_file == str(mount / "clients.toml")


# ---------------------------------------------------------------------------------------
# [resource] (README "The resource side").

RESOURCE = {"enabled": True, "public_origin": "https://api.example.com", "prefixes": ["/api/"],
            "upstream_url": "http://127.0.0.1:9100"}


def _resource(**changes: object) -> dict[str, Any]:
    return {**MINIMAL, "resource": {**RESOURCE, **changes}}


def test_resource_defaults() -> None:
    resource = settings_from_mapping(MINIMAL, {}).resource
    assert (resource.enabled, resource.bearer, resource.nonce_required) == (False, "allow", False)
    assert (resource.prefixes, resource.required_scopes, resource.check_listen) == ((), (), "")
    assert (resource.jwks_uri, resource.introspection_url,
            resource.introspection_cache_seconds) == ("", "", 300)


def test_resource_keys_from_the_environment() -> None:
    settings = settings_from_mapping(MINIMAL, {
        "TOKEN_SIDECAR_RESOURCE_ENABLED": "true",
        "TOKEN_SIDECAR_RESOURCE_PUBLIC_ORIGIN": "https://api.example.com",
        "TOKEN_SIDECAR_RESOURCE_PREFIXES": "/api/, /v2/",
        "TOKEN_SIDECAR_RESOURCE_UPSTREAM_URL": "http://api:9100",
        "TOKEN_SIDECAR_RESOURCE_CHECK_LISTEN": "127.0.0.1:8181",
        "TOKEN_SIDECAR_RESOURCE_BEARER": "deny",
        "TOKEN_SIDECAR_RESOURCE_REQUIRED_SCOPES": '["read", "write"]',
        "TOKEN_SIDECAR_RESOURCE_JWKS_URI": "https://as.example.com/jwks",
        "TOKEN_SIDECAR_RESOURCE_INTROSPECTION_URL": "https://as.example.com/introspect",
        "TOKEN_SIDECAR_RESOURCE_INTROSPECTION_CREDENTIALS_FILE": "/run/secrets/rs",
        "TOKEN_SIDECAR_RESOURCE_INTROSPECTION_CACHE_SECONDS": "60",
    })
    resource = settings.resource
    assert resource.enabled and resource.prefixes == ("/api/", "/v2/")
    assert (resource.check_listen, resource.bearer, resource.required_scopes) == (
        "127.0.0.1:8181", "deny", ("read", "write"))
    assert (resource.introspection_credentials_file, resource.introspection_cache_seconds) == (
        "/run/secrets/rs", 60)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"public_origin": ""}, "resource.public_origin: required"),
    ({"public_origin": "https://api.example.com/v1"}, "resource.public_origin: expected an origin"),
    ({"public_origin": "ftp://api.example.com"}, "resource.public_origin: expected an absolute"),
    ({"prefixes": ["api/"]}, "resource.prefixes: expected paths starting with '/'"),
    ({"prefixes": ["/api/../x"]}, "resource.prefixes: The path contains"),
    ({"prefixes": ["/"]}, "resource.prefixes: '/' would take over '/token'"),
    ({"prefixes": [], "check_listen": ""}, "resource.enabled: needs resource.prefixes"),
    ({"upstream_url": ""}, "resource.upstream_url: required with resource.prefixes"),
    ({"upstream_url": "http://u:p@api"}, "resource.upstream_url: a URL with user info"),
    ({"check_listen": "8181"}, "resource.check_listen: expected HOST:PORT"),
    ({"check_listen": "0.0.0.0:9090"}, "resource.check_listen: must differ"),
    ({"bearer": "maybe"}, "resource.bearer: must be one of allow, deny"),
    ({"nonce_required": True}, "resource.nonce_required: needs resource.nonce_secret_file"),
    ({"required_scopes": ["a b"]}, "resource.required_scopes: not scope tokens"),
    ({"jwks_uri": "jwks.json"}, "resource.jwks_uri: expected an absolute http(s) URL"),
    ({"introspection_url": "https://as.example.com/introspect"},
     "resource.introspection_credentials_file: required"),
    ({"introspection_cache_seconds": -1}, "resource.introspection_cache_seconds: must not"),
    # The URL is logged when its source cannot answer: no password in it (nor in the error).
    ({"introspection_url": "https://rs:s3cret@as.example.com/introspect"},
     "resource.introspection_url: a URL must not hold credentials"),
    ({"jwks_uri": "https://u:s3cret@as.example.com/jwks"},
     "resource.jwks_uri: a URL must not hold credentials"),
])
def test_resource_problems_name_the_key(changes: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_mapping(_resource(**changes), {})
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems


def test_a_disabled_resource_side_asks_for_nothing() -> None:
    settings = settings_from_mapping({**MINIMAL, "resource": {"prefixes": ["/api/"]}}, {})
    assert not settings.resource.enabled
