"""Slow and idle clients (issue 13 §4): header, body and keep-alive timeouts close the
connection, `server.max_connections` bounds them, each closing is counted. Raw sockets: a
client library would never send a request this slowly."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.web_protocol import RequestHandler

from sidecar.http.app import build_admin_app, build_app
from sidecar.http.decision_api import ApiKeys, build_api_app
from sidecar.http.resource_doors import build_check_app
from sidecar.http.server import SidecarRunner
from tests.conftest import make_settings
from tests.http.test_admin import samples
from tests.support.process import SidecarProcess, write_config
from tests.support.servers import RecordingUpstream, start_app

BOUND = 15.0  # an outer bound on every wait for the server: never reached when it works
TOKEN_HEAD = (b"POST /token HTTP/1.1\r\nHost: sidecar\r\n"
              b"Content-Type: application/x-www-form-urlencoded\r\n")
BODY = b"grant_type=client_credentials&client_id=app"
TOKEN_REQUEST = TOKEN_HEAD + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY


@dataclass
class Guarded:
    host: str
    port: int
    url: str
    admin_url: str
    runner: web.AppRunner

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port)

    async def closed(self, reason: str, client: aiohttp.ClientSession) -> float:
        async with client.get(self.admin_url + "/metrics") as response:
            found = samples(await response.text())
        return found.get(("token_sidecar_connections_closed_total", (("reason", reason),)), 0.0)

    async def open_connections(self, client: aiohttp.ClientSession) -> float:
        async with client.get(self.admin_url + "/metrics") as response:
            return samples(await response.text())[("token_sidecar_open_connections", ())]


@pytest.fixture
async def guarded_factory(upstream: RecordingUpstream) -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def start(upstream_url: str | None = None, **server: Any) -> Guarded:
        settings = make_settings(upstream_url or upstream.url, server=server)
        app = build_app(settings)
        runner, url = await start_app(app)
        admin_runner, admin_url = await start_app(build_admin_app(app))
        runners.extend([runner, admin_runner])
        host, port = url.removeprefix("http://").split(":")
        return Guarded(host, int(port), url, admin_url, runner)

    yield start
    for runner in runners:
        await runner.cleanup()


async def blocks(size: int, byte: bytes) -> AsyncIterator[bytes]:
    block = byte * 65536
    for _ in range(size // len(block)):
        yield block


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as closed:
    the server may close while the client still sends)."""
    received = b""
    try:
        while chunk := await reader.read(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One answer on a connection kept open."""
    status, headers, _ = parse_answer(await reader.readuntil(b"\r\n\r\n"))
    return status, headers, await reader.readexactly(int(headers.get("content-length", "0")))


async def status_for_an_unfinished_head(url: str, request_line: str = "GET /metrics") -> int:
    """The status a listener answers a request head that never ends with, once it closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"{request_line} HTTP/1.1\r\nHost: sidecar\r\n".encode())  # no blank line
    await writer.drain()
    answer = await asyncio.wait_for(read_until_closed(reader), BOUND)
    writer.close()
    return parse_answer(answer)[0]


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


async def test_an_idle_connection_is_closed_at_the_header_timeout(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    # Nothing was asked, so nothing is answered: the connection is just closed.
    assert await asyncio.wait_for(read_until_closed(reader), BOUND) == b""
    writer.close()
    assert await sidecar.closed("header_timeout", client) == 1


async def test_a_slowloris_is_closed_at_the_header_timeout_although_bytes_keep_coming(
        guarded_factory: Any, client: aiohttp.ClientSession, upstream: RecordingUpstream
        ) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()

    async def trickle() -> None:
        writer.write(TOKEN_HEAD)
        try:
            while True:  # a header byte every 0.2 s, never the end of the head
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.2)
        except ConnectionError:
            return

    sender = asyncio.create_task(trickle())
    try:
        await asyncio.wait_for(read_until_closed(reader), BOUND)
    finally:
        sender.cancel()
        writer.close()
    assert await sidecar.closed("header_timeout", client) == 1
    assert upstream.received == []


async def test_a_head_begun_then_abandoned_is_answered_408(
        guarded_factory: Any, upstream: RecordingUpstream) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    writer.write(TOKEN_HEAD)  # no blank line: the head never ends
    raw = await asyncio.wait_for(read_until_closed(reader), BOUND)
    writer.close()
    status, headers, body = parse_answer(raw)
    assert status == 408
    assert headers["connection"] == "close"
    assert headers["cache-control"] == "no-store"
    assert json.loads(body)["error"] == "invalid_request"
    assert upstream.received == []


async def test_a_stalled_body_is_answered_408_and_closed(
        guarded_factory: Any, client: aiohttp.ClientSession, upstream: RecordingUpstream,
        caplog: pytest.LogCaptureFixture) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=30, body_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    writer.write(TOKEN_HEAD + f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:10])
    with caplog.at_level(logging.DEBUG):
        raw = await asyncio.wait_for(read_until_closed(reader), BOUND)
    writer.close()
    status, _, body = parse_answer(raw)
    assert status == 408
    assert json.loads(body)["error"] == "invalid_request"
    assert upstream.received == []  # half a request is never forwarded
    assert await sidecar.closed("body_timeout", client) == 1
    # A connection cut under the handler is not the sidecar failing.
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_trickling_body_is_closed_at_the_first_gap_longer_than_the_body_timeout(
        guarded_factory: Any, client: aiohttp.ClientSession, upstream: RecordingUpstream
        ) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=30, body_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    writer.write(b"PUT /upload HTTP/1.1\r\nHost: sidecar\r\nContent-Length: 1000000\r\n\r\n")
    for _ in range(3):  # gaps well inside the timeout: kept
        writer.write(b"x" * 100)
        await writer.drain()
        await asyncio.sleep(0.1)
    raw = await asyncio.wait_for(read_until_closed(reader), BOUND)  # then silence
    writer.close()
    assert parse_answer(raw)[0] == 408
    assert await sidecar.closed("body_timeout", client) == 1


async def test_a_keepalive_connection_idle_after_an_answer_is_closed(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=30, keepalive_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    for _ in range(2):  # the connection is kept alive between requests...
        writer.write(TOKEN_REQUEST)
        status, _, body = await asyncio.wait_for(read_answer(reader), BOUND)
        assert status == 200
        assert json.loads(body)["access_token"] == "at-1"
    # ...and closed once idle for the keep-alive timeout, without an answer to nothing.
    assert await asyncio.wait_for(read_until_closed(reader), BOUND) == b""
    writer.close()
    assert await sidecar.closed("keepalive_timeout", client) == 1
    assert await sidecar.closed("header_timeout", client) == 0


async def test_pipelined_requests_are_all_answered_before_the_keepalive_timeout_applies(
        guarded_factory: Any, client: aiohttp.ClientSession, upstream: RecordingUpstream
        ) -> None:
    upstream.delay_seconds = 0.6  # each answer takes longer than every timeout
    sidecar = await guarded_factory(header_timeout_seconds=0.5, body_timeout_seconds=0.5,
                                    keepalive_timeout_seconds=0.5)
    reader, writer = await sidecar.connect()
    writer.write(TOKEN_REQUEST * 3)  # in one write: the last two wait, whole, in aiohttp's queue
    for _ in range(3):
        assert (await asyncio.wait_for(read_answer(reader), BOUND))[0] == 200
    assert await asyncio.wait_for(read_until_closed(reader), BOUND) == b""
    writer.close()
    assert await sidecar.closed("keepalive_timeout", client) == 1
    assert await sidecar.closed("header_timeout", client) == 0
    assert await sidecar.closed("body_timeout", client) == 0


async def test_a_keepalive_connection_must_send_its_next_head_within_the_header_timeout(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=0.5, keepalive_timeout_seconds=30)
    reader, writer = await sidecar.connect()
    writer.write(TOKEN_REQUEST)
    assert (await asyncio.wait_for(read_answer(reader), BOUND))[0] == 200
    writer.write(b"POST /tok")  # the next request begins, and stops
    raw = await asyncio.wait_for(read_until_closed(reader), BOUND)
    writer.close()
    assert parse_answer(raw)[0] == 408
    assert await sidecar.closed("header_timeout", client) == 1


async def test_at_max_connections_the_oldest_idle_one_is_closed_for_a_new_request(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(max_connections=3, header_timeout_seconds=60)
    idle = [await sidecar.connect() for _ in range(3)]
    await wait_for_open_connections(sidecar, client, 3)
    async with aiohttp.ClientSession() as fresh, fresh.post(
            sidecar.url + "/token", data=BODY,
            headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 200  # answered: room was made for it
    oldest_reader, _ = idle[0]
    assert await asyncio.wait_for(read_until_closed(oldest_reader), BOUND) == b""
    assert await sidecar.closed("max_connections", client) == 1
    for _, writer in idle:
        writer.close()


async def test_at_max_connections_with_none_idle_the_new_connection_is_refused_with_503(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(max_connections=1, body_timeout_seconds=60)
    busy_reader, busy_writer = await sidecar.connect()
    busy_writer.write(TOKEN_HEAD + b"Content-Length: 100\r\n\r\nab")  # its body is awaited
    await wait_for_open_connections(sidecar, client, 1)
    reader, writer = await sidecar.connect()
    raw = await asyncio.wait_for(read_until_closed(reader), BOUND)
    writer.close()
    status, headers, body = parse_answer(raw)
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body)["error"] == "temporarily_unavailable"
    assert await sidecar.closed("max_connections_refused", client) == 1
    # The busy connection was left alone: its request still completes.
    busy_writer.write(b"x" * 98)
    # Its body ("ab" + 98 x, a form naming no client) is answered: 401 invalid_client.
    assert (await asyncio.wait_for(read_answer(busy_reader), BOUND))[0] == 401
    busy_writer.close()


async def wait_for_open_connections(sidecar: Guarded, client: aiohttp.ClientSession,
                                    count: int) -> None:
    # The client's connect returns before the server has taken the connection in.
    async with asyncio.timeout(BOUND):
        while await sidecar.open_connections(client) < count:
            await asyncio.sleep(0.01)


async def test_requests_at_normal_speed_are_unaffected_by_short_timeouts(
        guarded_factory: Any, client: aiohttp.ClientSession, upstream: RecordingUpstream
        ) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=0.5, body_timeout_seconds=0.5,
                                    keepalive_timeout_seconds=0.5)
    size = 8 * 1024 * 1024
    async with client.put(sidecar.url + "/upload", data=blocks(size, b"z")) as response:
        assert response.status == 200
        assert (await response.json())["received"] == size
    async with client.post(sidecar.url + "/token", data=BODY, headers={
            "Content-Type": "application/x-www-form-urlencoded"}) as response:
        assert response.status == 200
    assert upstream.last.body == BODY
    for reason in ("header_timeout", "body_timeout", "keepalive_timeout"):
        assert await sidecar.closed(reason, client) == 0


async def test_a_body_the_upstream_is_slow_to_take_is_not_a_slow_client(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    """The sidecar stops reading a streamed body while the upstream does not take it; that
    wait is not the client's and does not count against the body timeout."""
    released = asyncio.Event()

    async def slow_upload(request: web.Request) -> web.Response:
        await asyncio.wait_for(released.wait(), BOUND)
        return web.json_response({"received": len(await request.read())})

    slow = web.Application(client_max_size=1024**3)
    slow.router.add_put("/upload", slow_upload)
    runner, slow_url = await start_app(slow)
    try:
        sidecar = await guarded_factory(slow_url, body_timeout_seconds=0.3)
        size = 64 * 1024 * 1024  # more than the socket buffers between client and upstream
        upload = asyncio.create_task(client.put(sidecar.url + "/upload", data=blocks(size, b"q")))
        # Held back for several body timeouts: the client is sending as fast as allowed.
        await asyncio.sleep(1.5)
        released.set()
        async with await asyncio.wait_for(upload, BOUND) as response:
            assert response.status == 200
            assert (await response.json())["received"] == size
        assert await sidecar.closed("body_timeout", client) == 0
    finally:
        await runner.cleanup()


async def test_the_token_port_is_guarded_with_the_aiohttp_internals_the_guard_reads(
        guarded_factory: Any) -> None:
    """sidecar/http/server.py reads these of aiohttp's RequestHandler; an aiohttp release that
    renames one must fail here, not silently unguard the token port."""
    from sidecar.http.server import GuardedRequestHandler  # noqa: PLC0415

    sidecar = await guarded_factory()
    reader, writer = await sidecar.connect()
    writer.write(b"GET /x HTTP/1.1\r\nHost: s\r\n\r\n")
    await asyncio.wait_for(read_answer(reader), BOUND)
    assert sidecar.runner.server is not None
    handlers = sidecar.runner.server.connections
    assert handlers and all(isinstance(h, GuardedRequestHandler) for h in handlers)
    writer.close()
    assert "_messages" in RequestHandler.__slots__
    assert "_current_request" in RequestHandler.__slots__
    assert "_reading_paused" in BaseProtocol.__slots__
    assert asyncio.iscoroutinefunction(RequestHandler.finish_response)


@pytest.fixture
async def sidecar_process(tmp_path: Path, upstream: RecordingUpstream
                          ) -> AsyncIterator[Any]:
    started: list[SidecarProcess] = []

    async def start(server: dict[str, Any], max_descriptors: tuple[int, int] | None = None
                    ) -> SidecarProcess:
        process = SidecarProcess(tmp_path / f"sidecar-{len(started)}.toml",
                                 {"upstream": {"url": upstream.url}, "server": server},
                                 max_descriptors=max_descriptors)
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.stop()


async def scrape_closed(client: aiohttp.ClientSession, process: SidecarProcess,
                        reason: str) -> float:
    async with client.get(process.admin_url + "/metrics") as response:
        found = samples(await response.text())
    return found.get(("token_sidecar_connections_closed_total", (("reason", reason),)), 0.0)


async def scrape_open(process: SidecarProcess) -> float:
    async with aiohttp.ClientSession() as session, session.get(
            process.admin_url + "/metrics") as response:
        return samples(await response.text())[("token_sidecar_open_connections", ())]


async def test_the_serving_process_closes_idle_connections_and_counts_them(
        sidecar_process: Any, client: aiohttp.ClientSession) -> None:
    process = await sidecar_process({"header_timeout_seconds": 0.5})
    reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
    assert await asyncio.wait_for(read_until_closed(reader), BOUND) == b""
    writer.close()
    assert await scrape_closed(client, process, "header_timeout") == 1


async def test_sighup_applies_the_bounds_to_connections_opened_after_it(
        sidecar_process: Any, client: aiohttp.ClientSession) -> None:
    process = await sidecar_process({"header_timeout_seconds": 60})
    process.sections["server"]["header_timeout_seconds"] = 0.5
    write_config(process.config, process.sections)
    process.signal(signal.SIGHUP)
    async with asyncio.timeout(BOUND):
        while not any("configuration reloaded" in line for line in process.output):
            await asyncio.sleep(0.02)
    reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
    assert await asyncio.wait_for(read_until_closed(reader), BOUND) == b""
    writer.close()
    assert await scrape_closed(client, process, "header_timeout") == 1


async def test_three_hundred_idle_connections_under_256_descriptors_leave_room_for_a_request(
        sidecar_process: Any, client: aiohttp.ClientSession) -> None:
    """The issue's case: idle connections beyond the descriptor limit kept a legitimate
    request from being answered."""
    process = await sidecar_process({"max_connections": 100, "header_timeout_seconds": 60},
                                    max_descriptors=(256, 256))
    idle = [await asyncio.open_connection("127.0.0.1", process.port) for _ in range(300)]
    try:
        async with aiohttp.ClientSession() as fresh, fresh.post(
                process.url + "/token", data=BODY,
                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
            assert response.status == 200
        assert await scrape_closed(client, process, "max_connections") >= 200
    finally:
        for _, writer in idle:
            writer.close()


async def test_a_descriptor_limit_too_low_for_max_connections_is_reported_at_start(
        sidecar_process: Any) -> None:
    process = await sidecar_process({"max_connections": 1024}, max_descriptors=(256, 256))
    assert any("server.max_connections" in line and "ulimit -n" in line
               for line in process.output)


async def test_a_soft_descriptor_limit_is_raised_as_far_as_max_connections_needs(
        sidecar_process: Any) -> None:
    process = await sidecar_process({"max_connections": 400, "header_timeout_seconds": 60},
                                    max_descriptors=(256, 4096))
    assert not any("ulimit -n" in line for line in process.output)
    idle = [await asyncio.open_connection("127.0.0.1", process.port) for _ in range(300)]
    try:  # more connections than the soft limit, all taken in: none had to be closed
        async with aiohttp.ClientSession() as fresh, fresh.post(
                process.url + "/token", data=BODY,
                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
            assert response.status == 200
        assert await scrape_open(process) == 300  # the idle ones; the request's is closed
    finally:
        for _, writer in idle:
            writer.close()


@pytest.mark.parametrize("door", ["resource check listener", "decision API"])
async def test_the_other_listeners_close_a_slow_request_head_too(
        door: str, upstream: RecordingUpstream, client: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    """The listeners that serve the token application's state on their own port have the
    token port's guards: a head trickled past server.header_timeout_seconds is answered 408
    and closed, and counted."""
    settings = make_settings(upstream.url, server={"header_timeout_seconds": 0.5}, resource={
        "enabled": True, "public_origin": "https://api.example.com",
        "check_listen": "127.0.0.1:1"})
    app = build_app(settings)
    token_runner, _ = await start_app(app)
    admin_runner, admin_url = await start_app(build_admin_app(app))
    other = build_check_app(app) if door == "resource check listener" else build_api_app(
        app, ApiKeys(("an-api-key-that-is-long-enough-0123456789",)), 262144)
    runner = SidecarRunner(other)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        assert await status_for_an_unfinished_head(f"http://127.0.0.1:{port}",
                                                    "POST /api/auth/token") == 408
        async with client.get(admin_url + "/metrics") as response:
            found = samples(await response.text())
        assert found[("token_sidecar_connections_closed_total",
                      (("reason", "header_timeout"),))] == 1.0
    finally:
        await runner.cleanup()
        await admin_runner.cleanup()
        await token_runner.cleanup()


async def test_the_admin_port_answers_a_trickled_head_408_and_closes_it(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    """The admin listener shares the process's descriptors with the token port: a slow or
    idle client there is bounded by the same timeouts, and not counted as the token port's."""
    sidecar = await guarded_factory(header_timeout_seconds=0.5)
    assert await status_for_an_unfinished_head(sidecar.admin_url) == 408
    assert await sidecar.closed("header_timeout", client) == 0


async def test_at_admin_max_connections_the_oldest_idle_one_is_closed_for_a_probe(
        guarded_factory: Any) -> None:
    sidecar = await guarded_factory(admin_max_connections=3, header_timeout_seconds=60)
    host, port = sidecar.admin_url.removeprefix("http://").split(":")
    idle = [await asyncio.open_connection(host, int(port)) for _ in range(3)]
    try:
        # Accepted after the three (the kernel's queue is in order): room is made for it.
        async with aiohttp.ClientSession() as probe, probe.get(
                sidecar.admin_url + "/livez") as response:
            assert response.status == 200
        oldest_reader, _ = idle[0]
        assert await asyncio.wait_for(read_until_closed(oldest_reader), BOUND) == b""
    finally:
        for _, writer in idle:
            writer.close()


async def test_admin_connections_are_not_counted_as_the_token_ports(
        guarded_factory: Any, client: aiohttp.ClientSession) -> None:
    sidecar = await guarded_factory(header_timeout_seconds=60)
    host, port = sidecar.admin_url.removeprefix("http://").split(":")
    idle = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
    try:
        async with client.get(sidecar.admin_url + "/livez") as response:
            assert response.status == 200  # accepted after the two idle ones
        assert await sidecar.open_connections(client) == 0  # nor the scrape's own
        _, token_writer = await sidecar.connect()  # the gauge counts the token port's
        await wait_for_open_connections(sidecar, client, 1)
        token_writer.close()
    finally:
        for _, writer in idle:
            writer.close()


async def test_the_serving_process_bounds_its_admin_port(
        sidecar_process: Any, client: aiohttp.ClientSession) -> None:
    """serve.py's own admin listener, not the tests' runner: a head trickled there is
    answered 408 and closed at server.header_timeout_seconds."""
    process = await sidecar_process({"header_timeout_seconds": 0.5})
    assert await status_for_an_unfinished_head(process.admin_url) == 408
    async with client.get(process.admin_url + "/livez") as response:
        assert response.status == 200
