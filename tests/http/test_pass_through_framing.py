"""Pass-through bodies keep the client's framing (issue 12, item 1): a body sent with
Content-Length reaches the upstream with the same Content-Length, still streamed; only a
chunked body goes on chunked. Proved against a real gunicorn serving a WSGI app that reads
its body as Django does, and against aiohttp."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import SidecarFactory
from tests.support.gunicorn import running_gunicorn
from tests.support.servers import start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INTROSPECTION = b"token=2YotnFZFEjr1zCsicMWpAA&token_type_hint=access_token"
LARGE = 8 * 1024 * 1024
BLOCK = b"z" * 65536


@pytest.fixture(scope="module")
def wsgi_upstream() -> Iterator[str]:
    with running_gunicorn("tests.support.wsgi_echo:app") as url:
        yield url


async def _blocks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // len(BLOCK)):
        yield BLOCK


def _sha256_of_blocks(size: int) -> str:
    digest = hashlib.sha256()
    for _ in range(size // len(BLOCK)):
        digest.update(BLOCK)
    return digest.hexdigest()


async def _post(client: aiohttp.ClientSession, url: str, data: Any,
                headers: dict[str, str]) -> dict[str, Any]:
    async with client.post(url, data=data, headers=headers) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def test_a_form_post_reaches_a_wsgi_app_with_its_content_length(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        wsgi_upstream: str) -> None:
    sidecar = await sidecar_factory(upstream_url=wsgi_upstream)
    seen = await _post(client, sidecar.url + "/introspect", INTROSPECTION, FORM)
    assert seen["content_length"] == str(len(INTROSPECTION))
    assert seen["transfer_encoding"] is None
    # What Django's request.POST would be built from: the whole body.
    assert seen["django_body_sha256"] == hashlib.sha256(INTROSPECTION).hexdigest()


async def test_an_empty_body_reaches_a_wsgi_app_as_content_length_zero(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        wsgi_upstream: str) -> None:
    sidecar = await sidecar_factory(upstream_url=wsgi_upstream)
    seen = await _post(client, sidecar.url + "/revoke", b"",
                       {**FORM, "Content-Length": "0"})
    assert seen["content_length"] == "0"
    assert seen["transfer_encoding"] is None
    assert seen["body_length"] == 0


async def test_a_large_body_with_content_length_streams_to_a_wsgi_app_intact(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        wsgi_upstream: str) -> None:
    sidecar = await sidecar_factory(upstream_url=wsgi_upstream)
    # The client streams too: a generator with a declared length, never one buffer.
    seen = await _post(client, sidecar.url + "/upload", _blocks(LARGE),
                       {"Content-Type": "application/octet-stream",
                        "Content-Length": str(LARGE)})
    assert seen["content_length"] == str(LARGE)
    assert seen["transfer_encoding"] is None
    assert seen["django_body_length"] == LARGE
    assert seen["django_body_sha256"] == _sha256_of_blocks(LARGE)


async def test_a_chunked_body_reaches_a_wsgi_app_chunked(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        wsgi_upstream: str) -> None:
    sidecar = await sidecar_factory(upstream_url=wsgi_upstream)
    size = 4 * len(BLOCK)
    seen = await _post(client, sidecar.url + "/upload", _blocks(size),
                       {"Content-Type": "application/octet-stream"})
    assert seen["transfer_encoding"] == "chunked"
    assert seen["content_length"] is None
    assert seen["body_length"] == size
    assert seen["body_sha256"] == _sha256_of_blocks(size)


@pytest.mark.parametrize("body", [INTROSPECTION, b""], ids=["form", "empty"])
async def test_aiohttp_upstream_gets_the_clients_content_length(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, body: bytes) -> None:
    sidecar = await sidecar_factory()
    async with client.post(sidecar.url + "/introspect", data=body,
                           headers={**FORM, "Content-Length": str(len(body))}) as response:
        assert response.status == 200
    received = sidecar.upstream.last
    assert received.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in received.headers
    assert received.body == body


async def test_aiohttp_upstream_gets_a_chunked_body_chunked(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory()
    async with client.post(sidecar.url + "/introspect", data=_blocks(2 * len(BLOCK)),
                           headers=FORM) as response:
        assert response.status == 200
    received = sidecar.upstream.last
    assert received.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in received.headers
    assert received.body == 2 * BLOCK


async def test_a_body_with_content_length_is_streamed_not_buffered(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory) -> None:
    """The upstream sees the first half before the client has sent the second: a sidecar
    that held the body whole would wait for the second half forever."""
    first_half_arrived = asyncio.Event()

    async def upstream(request: web.Request) -> web.Response:
        total = len(await request.content.readexactly(len(BLOCK)))
        first_half_arrived.set()
        total += len(await request.content.read())
        return web.json_response({"received": total,
                                  "content_length": request.headers.get("Content-Length")})

    app = web.Application()
    app.router.add_post("/upload", upstream)
    runner, url = await start_app(app)
    try:
        sidecar = await sidecar_factory(upstream_url=url)

        async def halves() -> AsyncIterator[bytes]:
            yield BLOCK
            await first_half_arrived.wait()
            yield BLOCK

        async def send() -> dict[str, Any]:
            return await _post(client, sidecar.url + "/upload", halves(),
                               {"Content-Length": str(2 * len(BLOCK))})

        # A guard against a hang, not a measurement.
        answer = await asyncio.wait_for(send(), timeout=30)
    finally:
        await runner.cleanup()
    assert answer == {"received": 2 * len(BLOCK), "content_length": str(2 * len(BLOCK))}
