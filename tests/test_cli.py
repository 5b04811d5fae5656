"""The command line: check-config's exit codes and messages, and the demo as a user runs it."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar import __version__
from tests.support.servers import free_port

EXAMPLE = Path(__file__).parent.parent / "config" / "sidecar.example.toml"
COMMAND = [sys.executable, "-m", "sidecar.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def test_check_config_accepts_the_example() -> None:
    result = run("check-config", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_config_prints_every_problem_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[server]\nlisten = "nope"\ncolour = "blue"\n'
                      '[trust]\ntrusted_proxies = ["300.1.1.1/8"]\n')
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    for key in ("server.listen", "server.colour", "trust.trusted_proxies", "upstream.url",
                "server.public_token_endpoint"):
        assert key in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_reads_the_introspection_credentials(tmp_path: Path) -> None:
    """A resource side's credentials file is checked with the rest, the secret never shown."""
    credentials = tmp_path / "introspection.toml"
    credentials.write_text('client_id = "gateway"\nsecret = "hunter2hunter2"\n')
    config = tmp_path / "sidecar.toml"
    config.write_text(
        '[server]\npublic_token_endpoint = "https://as.example.com/token"\n'
        '[upstream]\nurl = "http://127.0.0.1:9000"\n'
        '[resource]\nenabled = true\npublic_origin = "https://api.example.com"\n'
        'prefixes = ["/api/"]\nupstream_url = "http://127.0.0.1:9100"\n'
        'introspection_url = "http://127.0.0.1:9000/introspect"\n'
        'introspection_credentials_file = "introspection.toml"\n')
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "resource.introspection_credentials_file" in result.stderr
    assert "client_secret must be" in result.stderr and "unknown key 'secret'" in result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    credentials.write_text('client_id = "gateway"\nclient_secret = "hunter2hunter2"\n')
    assert run("check-config", "--config", str(config)).returncode == 0


def test_check_config_missing_file(tmp_path: Path) -> None:
    result = run("check-config", "--config", str(tmp_path / "none.toml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"token-sidecar {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", __version__)


def test_check_config_checks_a_registry_on_its_own() -> None:
    result = run("check-config", "--registry", str(EXAMPLE.parent / "clients.example.toml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        "client registry is valid: 2 clients (none: 1, private_key_jwt: 1)")


def test_check_config_names_every_problem_of_a_registry(tmp_path: Path) -> None:
    registry = tmp_path / "clients.toml"
    registry.write_text('[[clients]]\nclient_id = "a"\ntoken_endpoint_auth_method = "magic"\n'
                        '[[clients]]\nclient_id = "b"\n'
                        'token_endpoint_auth_method = "client_secret_basic"\n'
                        'client_secret_file = "missing.secret"\n')
    result = run("check-config", "--registry", str(registry))
    assert result.returncode == 2
    assert f"{registry}: 2 configuration problem(s)" in result.stderr
    assert "clients[0].token_endpoint_auth_method: unknown method 'magic'" in result.stderr
    assert "clients[1].client_secret_file" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_checks_a_config_and_a_registry_together(tmp_path: Path) -> None:
    broken = tmp_path / "clients.toml"
    broken.write_text("[[clients]]\n")
    result = run("check-config", "--config", str(EXAMPLE), "--registry", str(broken))
    assert result.returncode == 2
    assert "configuration is valid" in result.stdout
    assert "clients[0].client_id: required" in result.stderr


def test_check_config_needs_something_to_check() -> None:
    result = run("check-config")
    assert result.returncode == 2
    assert "--config FILE, --registry FILE" in result.stderr


class Demo:
    """`token-sidecar demo` as a user runs it, on free ports; `printed` is what it printed
    up to "Press Ctrl-C"."""

    def __init__(self) -> None:
        self.port, self.upstream_port, self.admin_port = free_port(), free_port(), free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.printed = ""

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def __aenter__(self) -> Demo:
        self.process = await asyncio.create_subprocess_exec(
            *COMMAND, "demo", "--port", str(self.port), "--upstream-port",
            str(self.upstream_port), "--admin-port", str(self.admin_port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert self.process.stdout is not None
        while "Press Ctrl-C" not in self.printed:
            line = await asyncio.wait_for(self.process.stdout.readline(), 30)
            assert line, self.printed
            self.printed += line.decode()
        return self

    async def stop(self, signum: signal.Signals) -> tuple[int, str]:
        """Send `signum`; the exit code and the rest of the output."""
        assert self.process is not None and self.process.stdout is not None
        self.process.send_signal(signum)
        rest = await asyncio.wait_for(self.process.stdout.read(), 30)
        return await asyncio.wait_for(self.process.wait(), 30), rest.decode()

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def curls(self) -> list[list[str]]:
        joined = self.printed.replace("\\\n", " ")  # shell line continuations
        return [shlex.split(line.strip()) for line in joined.splitlines()
                if line.strip().startswith("curl ")]


async def test_demo_serves_what_it_prints() -> None:
    async with Demo() as demo:
        answers = [await _run_curl_like(command) for command in demo.curls()]
        assert [(status, body.get("error")) for status, body, _ in answers] == [
            (200, None),                      # valid, authenticated by the sidecar
            (401, "invalid_client"),          # wrong secret
            (400, "invalid_request"),         # scope twice
            (400, "unsupported_grant_type"),  # grant_type=magic
            (200, None),                      # forged context header
        ]
        valid, wrong_secret, *_, forged = answers
        assert valid[1]["sidecar_context"]["X-Token-Client-Authenticated"] == "true"
        assert valid[1]["sidecar_context"]["X-Token-Client-Id"] == "demo-client"
        assert wrong_secret[2].startswith("Basic ")
        assert "access_token" not in wrong_secret[1]  # answered by the sidecar itself
        assert forged[1]["sidecar_context"]["X-Token-Client-Id"] == "demo-client"
        assert f"{demo.admin_url}/metrics" in demo.printed


async def test_demo_serves_the_admin_port() -> None:
    async with Demo() as demo, aiohttp.ClientSession() as session:
        for path in ("/livez", "/readyz"):
            async with session.get(demo.admin_url + path) as response:
                assert response.status == 200, path
        await _run_curl_like(demo.curls()[1])  # the wrong secret
        async with session.get(demo.admin_url + "/metrics") as response:
            assert response.status == 200
            metrics = await response.text()
        assert re.search(r'token_sidecar_requests_total\{[^}]*action="INVALID_CLIENT"[^}]*'
                         r'result_code="client.secret_mismatch"[^}]*\} 1\.0', metrics), metrics


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_demo_stops_cleanly_on_a_signal(signum: signal.Signals) -> None:
    async with Demo() as demo:
        code, output = await demo.stop(signum)
    assert code == 0, output
    assert "draining" in output and "stopped" in output
    assert "Traceback" not in output


async def _run_curl_like(argv: list[str]) -> tuple[int, dict[str, Any], str]:
    """Run one printed curl command with aiohttp (curl may not be installed): the status,
    the JSON body and the WWW-Authenticate header."""
    url = argv[-1]
    data: list[str] = []
    headers: dict[str, str] = {"Content-Type": "application/x-www-form-urlencoded"}
    args = iter(argv[1:-1])
    for arg in args:
        if arg == "-d":
            data.append(next(args))
        elif arg == "-u":
            token = base64.b64encode(next(args).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name] = value.strip()
    async with aiohttp.ClientSession() as session, session.post(
            url, data="&".join(data), headers=headers) as response:
        body = await response.json()
        return response.status, body, response.headers.get("WWW-Authenticate", "")


def test_check_config_loads_the_client_registry(tmp_path: Path) -> None:
    registry = EXAMPLE.parent / "clients.example.toml"
    config = tmp_path / "sidecar.toml"
    config.write_text(EXAMPLE.read_text().replace('registry_file = ""',
                                                  f'registry_file = "{registry}"'))
    assert run("check-config", "--config", str(config)).returncode == 0
    broken = tmp_path / "clients.toml"
    broken.write_text('[[clients]]\nclient_id = "x"\ntoken_endpoint_auth_method = "magic"\n')
    config.write_text(EXAMPLE.read_text().replace('registry_file = ""',
                                                  'registry_file = "clients.toml"'))
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "clients.registry_file: clients[0].token_endpoint_auth_method" in result.stderr


def test_check_config_checks_the_store_url(tmp_path: Path) -> None:
    config = tmp_path / "sidecar.toml"
    config.write_text(EXAMPLE.read_text().replace(
        'url = "memory://"', 'url = "redis+sentinel://user:hunter2@/"'))
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "store.url" in result.stderr
    assert "hunter2" not in result.stderr


def test_metadata_prints_what_the_sidecar_writes_in() -> None:
    result = run("metadata", "--config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout)
    assert fields["dpop_signing_alg_values_supported"][0] == "ES256"
    assert fields["tls_client_certificate_bound_access_tokens"] is True


@pytest.mark.parametrize(("keys", "problem"), [
    (None, "api.key_file: cannot read"),
    ("# nothing yet\n", "no secret in the file"),
    ("short\n", "must be printable text of at least 32 characters"),
])
def test_check_config_refuses_a_decision_api_without_a_usable_key(
        tmp_path: Path, keys: str | None, problem: str) -> None:
    if keys is not None:
        (tmp_path / "api.keys").write_text(keys)
    config = tmp_path / "api.toml"
    config.write_text('[server]\npublic_token_endpoint = "https://as.example.com/token"\n'
                      'api_listen = "127.0.0.1:8181"\n[upstream]\nurl = "http://127.0.0.1:9000"\n'
                      '[api]\nkey_file = "api.keys"\n')
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert problem in result.stderr and "Traceback" not in result.stderr


def test_check_config_requires_a_key_file_for_the_decision_api(tmp_path: Path) -> None:
    config = tmp_path / "api.toml"
    config.write_text('[server]\npublic_token_endpoint = "https://as.example.com/token"\n'
                      'api_listen = "127.0.0.1:8080"\n[upstream]\nurl = "http://127.0.0.1:9000"\n')
    result = run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "api.key_file: required when server.api_listen is set" in result.stderr
    assert "server.api_listen: must differ from server.listen" in result.stderr
