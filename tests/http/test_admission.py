"""Admission (server.max_in_flight, server.max_queued, server.queue_timeout_seconds), through
real HTTP: requests beyond the bound wait their turn, and only past the queue are they shed
with 503 temporarily_unavailable, Retry-After and a metric of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sidecar.http.app import build_admin_app, build_app
from tests.conftest import make_settings
from tests.http.test_admin import samples
from tests.support.servers import start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = "grant_type=client_credentials&client_id=app"


class HeldUpstream:
    """A token endpoint that keeps every request until `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.arrived: asyncio.Queue[None] = asyncio.Queue()
        self.count = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        await request.read()
        self.count += 1
        self.arrived.put_nowait(None)
        await self.release.wait()
        return web.json_response({"access_token": "at", "token_type": "Bearer"})


@dataclass
class Sidecar:
    url: str
    admin_url: str
    upstream: HeldUpstream

    async def post(self, session: aiohttp.ClientSession) -> tuple[int, dict[str, Any], str]:
        async with session.post(self.url + "/token", data=CC, headers=FORM) as response:
            return response.status, await response.json(), response.headers.get(
                "Retry-After", "")

    async def metric(self, session: aiohttp.ClientSession, name: str, **labels: str) -> float:
        async with session.get(self.admin_url + "/metrics") as response:
            found = samples(await response.text())
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    async def until_metric(self, session: aiohttp.ClientSession, name: str,
                           value: float) -> None:
        async with asyncio.timeout(5):
            while await self.metric(session, name) != value:
                await asyncio.sleep(0.01)


Start = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def start_(**server: Any) -> Sidecar:
        upstream = HeldUpstream()
        runner, upstream_url = await start_app(upstream.app())
        app = build_app(make_settings(upstream_url, server=server))
        token_runner, url = await start_app(app)
        admin_runner, admin_url = await start_app(build_admin_app(app))
        runners.extend([admin_runner, token_runner, runner])
        return Sidecar(url, admin_url, upstream)

    yield start_
    for runner in runners:
        await runner.cleanup()


async def test_beyond_max_in_flight_and_a_full_queue_a_request_is_shed(
        start: Start, client: aiohttp.ClientSession) -> None:
    sidecar = await start(max_in_flight=1, max_queued=0)
    held = asyncio.create_task(sidecar.post(client))
    await sidecar.upstream.arrived.get()  # the one turn is taken

    status, body, retry_after = await sidecar.post(client)
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    assert retry_after.isdigit() and int(retry_after) >= 1
    assert await sidecar.metric(client, "token_sidecar_requests_shed_total",
                                reason="queue_full") == 1
    assert await sidecar.metric(client, "token_sidecar_requests_total",
                                action="INTERNAL_SERVER_ERROR", grant_type="",
                                result_code="server.overloaded") == 1
    assert await sidecar.metric(client, "token_sidecar_requests_total",
                                action="INTERNAL_SERVER_ERROR", grant_type="",
                                result_code="store.unavailable") == 0

    sidecar.upstream.release.set()
    assert (await held)[0] == 200
    assert sidecar.upstream.count == 1  # the shed request never reached the upstream


async def test_a_queued_request_waits_for_its_turn(start: Start,
                                                   client: aiohttp.ClientSession) -> None:
    sidecar = await start(max_in_flight=1, max_queued=5, queue_timeout_seconds=30)
    first = asyncio.create_task(sidecar.post(client))
    await sidecar.upstream.arrived.get()
    queued = [asyncio.create_task(sidecar.post(client)) for _ in range(3)]
    await sidecar.until_metric(client, "token_sidecar_queued_requests", 3)
    assert sidecar.upstream.count == 1  # the queued ones wait before the upstream

    sidecar.upstream.release.set()
    assert [(await task)[0] for task in (first, *queued)] == [200] * 4
    assert sidecar.upstream.count == 4
    assert await sidecar.metric(client, "token_sidecar_queued_requests") == 0
    assert await sidecar.metric(client, "token_sidecar_requests_shed_total",
                                reason="queue_full") == 0


async def test_a_request_that_waits_too_long_is_shed(start: Start,
                                                     client: aiohttp.ClientSession) -> None:
    sidecar = await start(max_in_flight=1, max_queued=5, queue_timeout_seconds=0.2)
    held = asyncio.create_task(sidecar.post(client))
    await sidecar.upstream.arrived.get()

    status, body, retry_after = await sidecar.post(client)
    assert (status, body["error"], retry_after) == (503, "temporarily_unavailable", "1")
    assert await sidecar.metric(client, "token_sidecar_requests_shed_total",
                                reason="queue_timeout") == 1
    assert await sidecar.metric(client, "token_sidecar_queued_requests") == 0

    sidecar.upstream.release.set()
    assert (await held)[0] == 200
    # The turn came back: the next request is served at once.
    assert (await sidecar.post(client))[0] == 200
