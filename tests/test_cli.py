"""The command line: check-config's exit codes and messages, and the demo as a user runs it."""

from __future__ import annotations

import asyncio
import base64
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

from sidecar import __version__

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_demo_serves_what_it_prints() -> None:
    port, upstream_port = _free_port(), _free_port()
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "demo", "--port", str(port), "--upstream-port", str(upstream_port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    try:
        printed = ""
        while "Press Ctrl-C" not in printed:
            line = await asyncio.wait_for(process.stdout.readline(), 30)
            assert line, printed
            printed += line.decode()
        joined = printed.replace("\\\n", " ")  # shell line continuations
        commands = [shlex.split(line.strip()) for line in joined.splitlines()
                    if line.strip().startswith("curl ")]
        assert len(commands) == 4
        assert len(commands) >= 2
        statuses = [await _run_curl_like(command) for command in commands]
        assert statuses[0] == (200, None)
        assert statuses[1] == (400, "invalid_request")
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)


async def _run_curl_like(argv: list[str]) -> tuple[int, str | None]:
    """Run one printed curl command with aiohttp (curl may not be installed)."""
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
        return response.status, body.get("error")


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
