"""Real HTTP servers for the tests: a recording upstream and the sidecar in front of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from multidict import CIMultiDict

from sidecar.http.server import SidecarRunner
from tests.support.redis_server import free_port

__all__ = ["RawAnswer", "RecordingUpstream", "free_port", "raw_request", "start_app"]


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: CIMultiDict[str]
    body: bytes
    target: str = ""  # the request target as it arrived (path and query, not decoded)

    @property
    def context(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.lower().startswith("x-token-")}

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode()))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordingUpstream:
    """An upstream token endpoint that remembers what reached it."""

    received: list[Received] = field(default_factory=list)
    token_status: int = 200
    token_body: dict[str, Any] = field(default_factory=lambda: {
        "access_token": "at-1", "token_type": "Bearer", "expires_in": 3600})
    token_headers: dict[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    # False: never answer `Expect: 100-continue` with 100 (as many servers do not).
    sends_continue: bool = True
    streamed_bytes: int = 0
    url: str = ""

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)
        app.router.add_post("/token", self._token, expect_handler=self._expect)
        app.router.add_put("/upload", self._upload)
        app.router.add_get("/download/{size}", self._download)
        app.router.add_route("*", "/{tail:.*}", self._echo, expect_handler=self._expect)
        return app

    async def _expect(self, request: web.Request) -> None:
        if self.sends_continue and request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    async def _record(self, request: web.Request) -> Received:
        body = await request.read()
        item = Received(request.method, request.path, request.rel_url.raw_query_string,
                        CIMultiDict(request.headers), body, request.raw_path)
        self.received.append(item)
        return item

    async def _token(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        return web.Response(status=self.token_status, body=json.dumps(self.token_body).encode(),
                            content_type="application/json", headers=self.token_headers)

    async def _echo(self, request: web.Request) -> web.Response:
        item = await self._record(request)
        return web.json_response({"method": item.method, "path": item.path, "query": item.query,
                                  "body_length": len(item.body)}, headers={"X-Echo": "1"})

    async def _upload(self, request: web.Request) -> web.Response:
        # Counts without keeping: the test checks that 50 MB pass, not that we hold them.
        total = 0
        async for chunk in request.content.iter_chunked(65536):
            total += len(chunk)
        self.streamed_bytes = total
        return web.json_response({"received": total})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        block = b"x" * 65536
        sent = 0
        while sent < size:
            chunk = block[: min(len(block), size - sent)]
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
        return response

    @property
    def last(self) -> Received:
        return self.received[-1]


@dataclass
class RawAnswer:
    status: int
    head: bytes  # the status line and the header lines, as they came
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(url: str, data: bytes, timeout: float = 10) -> RawAnswer:
    """Send `data` as it is over one connection and read until the server closes it: for
    what a client library would normalise away (underscores, obs-text, duplicate headers).
    `data` should ask for `Connection: close`."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        answer = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return RawAnswer(int(head.split(b" ", 2)[1]), head, body)


async def start_app(app: web.Application, host: str = "127.0.0.1",
                    port: int = 0) -> tuple[web.AppRunner, str]:
    runner = SidecarRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = runner.addresses[0][1]  # the port the system chose when `port` is 0
    return runner, f"http://{host}:{port}"

