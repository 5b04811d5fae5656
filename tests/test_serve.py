"""`token-sidecar serve` as a real process: JSON logs without secrets, graceful shutdown,
reload on SIGHUP, workers (issue: "Run it like infrastructure")."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import trustme

from sidecar.serve import descriptors_needed
from tests.conftest import make_settings
from tests.support.dpop import DpopKey
from tests.support.process import SidecarProcess, write_config
from tests.support.redis_server import RedisServer
from tests.support.servers import RecordingUpstream, free_port

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
Start = Callable[..., Awaitable[SidecarProcess]]


@pytest.fixture
async def start_sidecar(tmp_path: Path, upstream: RecordingUpstream) -> AsyncIterator[Start]:
    started: list[SidecarProcess] = []

    async def start(**sections: dict[str, Any]) -> SidecarProcess:
        sections = {"upstream": {"url": upstream.url}, **sections}
        process = SidecarProcess(tmp_path / f"sidecar-{len(started)}.toml", sections)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.stop()


def log_lines(process: SidecarProcess) -> list[dict[str, Any]]:
    return [json.loads(line) for line in process.output if line.startswith("{")]


async def test_one_json_line_per_request_and_no_secret_in_it(
        start_sidecar: Start, client: aiohttp.ClientSession) -> None:
    sidecar = await start_sidecar()
    leaf = trustme.CA().issue_cert("client.example").cert_chain_pems[0].bytes().decode()
    cert_body = "".join(leaf.splitlines()[1:-1])
    secrets = {
        "client_secret": "S3cr3t-client-secret-value",
        "password": "hunter2-user-password",
        "refresh_token": "rt-secret-refresh-token-value",
        "code": "authz-code-secret-value",
        "assertion": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtYXNzZXJ0aW9uIn0.c2lnbmF0dXJl",
        "basic": "basic-secret-password",
    }
    proof = DpopKey().proof("https://as.example.com/token")
    requests = [
        ({"grant_type": "password", "username": "alice", "password": secrets["password"],
          "client_id": "c", "client_secret": secrets["client_secret"]}, {}),
        ({"grant_type": "refresh_token", "refresh_token": secrets["refresh_token"]},
         {"Authorization": "Basic " + base64.b64encode(
             f"web:{secrets['basic']}".encode()).decode()}),
        ({"grant_type": "authorization_code", "code": secrets["code"], "client_id": "spa"},
         {"DPoP": proof, "X-SSL-Client-Cert": quote(leaf, safe="")}),
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
          "assertion": secrets["assertion"]}, {}),
        ({"grant_type": "password", "password": secrets["password"], "client_id": "c"},
         {}),  # refused
        ({"grant_type": "authorization_code", "code": secrets["code"], "client_id": "spa"},
         {"DPoP": proof}),  # replayed proof: refused
    ]
    for form, headers in requests:
        async with client.post(sidecar.url + "/token", data=form,
                               headers={**FORM, **headers}):
            pass

    def access_lines() -> list[dict[str, Any]]:
        return [line for line in log_lines(sidecar) if line.get("logger") == "token_sidecar.access"]

    await _eventually(lambda: len(access_lines()) >= len(requests))
    access = access_lines()
    assert len(access) == len(requests)
    for line in access:
        assert {"time", "request_id", "action", "result_code", "grant_type", "client_id",
                "auth_method", "status", "duration_seconds", "upstream_status"} <= set(line)
    assert [line["status"] for line in access] == [200, 200, 200, 200, 400, 400]
    everything = "\n".join(sidecar.output)
    for secret in [*secrets.values(), proof, proof.split(".")[2], cert_body[:40],
                   quote(leaf, safe="")[:60]]:
        assert secret not in everything


@pytest.mark.parametrize(("setting", "loop"), [(None, "uvloop"), ("auto", "uvloop"),
                                              ("asyncio", "asyncio")])
async def test_serve_runs_on_uvloop_unless_the_setting_says_asyncio(
        start_sidecar: Start, client: aiohttp.ClientSession, setting: str | None,
        loop: str) -> None:
    server = {} if setting is None else {"event_loop": setting}
    sidecar = await start_sidecar(server=server)
    async with client.post(sidecar.url + "/token", headers=FORM,
                           data="grant_type=client_credentials&client_id=c") as response:
        assert response.status == 200
    serving = [line for line in log_lines(sidecar) if "event_loop" in line]
    assert [line["event_loop"] for line in serving] == [loop]
    assert serving[0]["message"].startswith(f"serving on 127.0.0.1:{sidecar.port}")


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("tuned", True),
                                                ("python", False)])
async def test_serve_freezes_its_startup_objects_unless_gc_is_python(
        start_sidecar: Start, client: aiohttp.ClientSession, setting: str | None,
        frozen: bool) -> None:
    sidecar = await start_sidecar(server={} if setting is None else {"gc": setting})
    async with client.post(sidecar.url + "/token", headers=FORM,
                           data="grant_type=client_credentials&client_id=c") as response:
        assert response.status == 200
    serving = [line for line in log_lines(sidecar) if "event_loop" in line]
    assert [line["gc"] for line in serving] == [setting or "tuned"]
    # The process's own count (gc.get_freeze_count()): the modules, the app, the settings.
    assert (serving[0]["gc_frozen_objects"] > 10_000) is frozen
    assert frozen or serving[0]["gc_frozen_objects"] == 0


async def test_sigterm_lets_a_request_in_flight_finish(
        start_sidecar: Start, client: aiohttp.ClientSession,
        upstream: RecordingUpstream) -> None:
    sidecar = await start_sidecar(server={"shutdown_grace_seconds": 10})
    upstream.delay_seconds = 1.5
    in_flight = asyncio.create_task(client.post(
        sidecar.url + "/token", data="grant_type=client_credentials&client_id=a", headers=FORM))
    await _eventually(lambda: bool(upstream.received))
    sidecar.signal(signal.SIGTERM)

    async def refused() -> bool:
        # A bare connect: a probe that got in must not wait on the slow upstream itself.
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", sidecar.port)
        except ConnectionError:
            return True
        writer.close()
        return False

    # Draining: new connections are refused (the token port no longer listens) while the
    # request in flight is still being answered.
    await _eventually_async(refused)
    assert not in_flight.done()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as fresh, fresh.post(
                sidecar.url + "/token", data="grant_type=client_credentials&client_id=b",
                headers=FORM):
            pass
    response = await in_flight
    assert response.status == 200
    assert (await response.json())["access_token"] == "at-1"
    response.release()
    assert await sidecar.wait() == 0
    assert any("draining" in line for line in sidecar.output)


async def test_readyz_turns_unready_while_draining(
        start_sidecar: Start, client: aiohttp.ClientSession,
        upstream: RecordingUpstream) -> None:
    sidecar = await start_sidecar(server={"shutdown_grace_seconds": 10})
    upstream.delay_seconds = 1.5
    in_flight = asyncio.create_task(client.post(
        sidecar.url + "/token", data="grant_type=client_credentials&client_id=a", headers=FORM))
    await _eventually(lambda: bool(upstream.received))
    sidecar.signal(signal.SIGTERM)

    async def unready() -> bool:
        async with aiohttp.ClientSession() as fresh, fresh.get(
                sidecar.admin_url + "/readyz") as response:
            return response.status == 503

    await _eventually_async(unready)
    assert not in_flight.done()  # unready before the last request is answered
    (await in_flight).release()
    await sidecar.wait()


async def test_sighup_reloads_and_refuses_a_broken_config(
        start_sidecar: Start, client: aiohttp.ClientSession) -> None:
    sidecar = await start_sidecar()
    body = "grant_type=password&username=a&password=b&client_id=c"
    async with client.post(sidecar.url + "/token", data=body, headers=FORM) as response:
        assert response.status == 200
    sections = {**sidecar.sections, "grants": {"password": "reject"}}
    write_config(sidecar.config, sections)
    sidecar.signal(signal.SIGHUP)
    await _eventually(lambda: any("configuration reloaded" in line for line in sidecar.output))
    async with client.post(sidecar.url + "/token", data=body, headers=FORM) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "unsupported_grant_type"
    # A broken file is refused; the configuration in force stays.
    sidecar.config.write_text("[server\nbroken")
    sidecar.signal(signal.SIGHUP)
    await _eventually(lambda: any("reload refused" in line for line in sidecar.output))
    async with client.post(sidecar.url + "/token", data=body, headers=FORM) as response:
        assert response.status == 400
    async with client.get(sidecar.admin_url + "/metrics") as response:
        text = await response.text()
    assert 'token_sidecar_config_reloads_total{outcome="applied"} 1.0' in text
    assert 'token_sidecar_config_reloads_total{outcome="refused"} 1.0' in text


async def test_workers_share_the_port_and_their_metrics(
        start_sidecar: Start, client: aiohttp.ClientSession, redis_server: RedisServer,
        upstream: RecordingUpstream) -> None:
    sidecar = await start_sidecar(server={"workers": 2},
                                  store={"url": redis_server.url,
                                         "command_timeout_seconds": 1.0,
                                         "connect_timeout_seconds": 1.0})
    # Both workers listen (each logs "serving on" once it does).
    await _eventually(lambda: len({line["pid"] for line in log_lines(sidecar)
                                   if str(line.get("message", "")).startswith("serving on")}) == 2)
    total = 40
    for _ in range(total):
        async with aiohttp.ClientSession() as fresh, fresh.post(
                sidecar.url + "/token", data="grant_type=client_credentials&client_id=w",
                headers=FORM) as response:
            assert response.status == 200
    assert len(upstream.received) == total
    async with client.get(sidecar.admin_url + "/metrics") as response:
        text = await response.text()
    counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith("token_sidecar_requests_total{"))
    assert counted == total
    # Both workers took connections (SO_REUSEPORT spreads 40 fresh connections over both).
    serving = {line["pid"] for line in log_lines(sidecar)
               if line.get("logger") == "token_sidecar.access"}
    assert len(serving) == 2


async def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for `check` (polled, not a fixed sleep: a loaded machine only makes it slower)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def _eventually_async(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)


async def test_the_resource_check_listener_starts_and_stops_with_the_process(
        start_sidecar: Start, client: aiohttp.ClientSession) -> None:
    check_port = free_port()
    sidecar = await start_sidecar(resource={
        "enabled": True, "public_origin": "https://api.example.com",
        "check_listen": f"127.0.0.1:{check_port}"})
    check_url = f"http://127.0.0.1:{check_port}"
    async with client.get(check_url + "/api/things") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("DPoP algs=")
    serving = [line for line in log_lines(sidecar) if "check_listen" in line]
    assert serving[0]["check_listen"] == f"127.0.0.1:{check_port}"
    sidecar.signal(signal.SIGTERM)
    assert await sidecar.wait() == 0
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as fresh, fresh.get(check_url + "/api/things"):
            pass


@pytest.mark.parametrize(("sections", "expected"), [
    # token port 100 + admin 10 + two upstream pools of 5 + store 7 + the margin 64
    ({}, 100 + 10 + 2 * 5 + 7 + 64),
    ({"resource": {"enabled": True, "public_origin": "https://api.example.com",
                   "check_listen": "127.0.0.1:9191"}}, 2 * 100 + 10 + 2 * 5 + 7 + 64),
    ({"resource": {"enabled": False, "check_listen": "127.0.0.1:9191"}},
     100 + 10 + 2 * 5 + 7 + 64),  # a check listener configured but off does not listen
    ({"server": {"api_listen": "127.0.0.1:9292"}, "api": {"key_file": "/run/api-keys"}},
     2 * 100 + 10 + 2 * 5 + 7 + 64),
])
def test_the_descriptors_a_worker_needs_count_every_listeners_bound(
        sections: dict[str, dict[str, Any]], expected: int) -> None:
    limits = {"server": {"max_connections": 100, "admin_max_connections": 10},
              "upstream": {"pool_size": 5},
              "store": {"max_connections": 7, "warm_connections": 1}}
    for name, values in sections.items():
        limits.setdefault(name, {}).update(values)
    assert descriptors_needed(make_settings("http://127.0.0.1:1", **limits)) == expected
