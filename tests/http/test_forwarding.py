"""README "What one token request goes through", steps 4-5, through real HTTP: what reaches
the upstream, and what comes back."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sidecar.logs import FIELDS_ATTRIBUTE
from tests.conftest import Sidecar, SidecarFactory
from tests.support.raw_http import send_raw

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_valid_request_is_forwarded_with_context(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory) -> None:
    # The endpoint URL's own query (RFC 6749 §3.2) goes through when it is listed.
    sidecar = await sidecar_factory(server={"token_query_allowed": ["tenant"]})
    body = "grant_type=client_credentials&scope=read+write"
    headers = {**FORM, "Authorization": basic("billing", "s3cret"), "X-Custom": "kept"}
    async with client.post(sidecar.token_url + "?tenant=a", data=body,
                           headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["access_token"] == "at-1"
    received = sidecar.upstream.last
    assert received.method == "POST"
    assert received.path == "/token"
    assert received.query == "tenant=a"
    assert received.body == body.encode()
    assert received.headers["Authorization"] == headers["Authorization"]
    assert received.headers["X-Custom"] == "kept"
    assert received.context == {
        "X-Token-Action": "OK",
        "X-Token-Grant-Type": "client_credentials",
        "X-Token-Client-Id": "billing",
        "X-Token-Client-Auth-Method": "client_secret_basic",
        "X-Token-Client-Authenticated": "false",
    }
    assert received.headers["X-Request-Id"]


@pytest.mark.parametrize("forged", [
    "X-Token-Client-Authenticated", "x-token-client-id", "X-TOKEN-ACTION", "X-Token-Anything",
    "X-Token-DPoP-JKT", "X-Token-Client-Cert-S256",
])
async def test_inbound_context_headers_never_reach_the_upstream(
        client: aiohttp.ClientSession, sidecar: Sidecar, forged: str) -> None:
    headers = {**FORM, forged: "forged-value"}
    async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                           headers=headers) as response:
        assert response.status == 200
    assert "forged-value" not in sidecar.upstream.last.headers.values()
    async with client.get(sidecar.url + "/other", headers={forged: "forged-value"}) as response:
        assert response.status == 200
    assert "forged-value" not in sidecar.upstream.last.headers.values()


async def test_hop_by_hop_headers_are_not_forwarded(client: aiohttp.ClientSession,
                                                    sidecar: Sidecar) -> None:
    headers = {**FORM, "Connection": "keep-alive, X-Private", "X-Private": "hop",
               "Keep-Alive": "timeout=5", "Proxy-Authorization": "Basic eDp5", "TE": "trailers"}
    async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                           headers=headers) as response:
        assert response.status == 200
    received = sidecar.upstream.last.headers
    for name in ("X-Private", "Keep-Alive", "Proxy-Authorization", "TE"):
        assert name not in received


async def test_request_id_is_kept_or_generated(client: aiohttp.ClientSession,
                                               sidecar: Sidecar) -> None:
    body = "grant_type=client_credentials&client_id=a"
    async with client.post(sidecar.token_url, data=body,
                           headers={**FORM, "X-Request-Id": "abc-123"}) as response:
        assert response.headers["X-Request-Id"] == "abc-123"
    assert sidecar.upstream.last.headers["X-Request-Id"] == "abc-123"
    async with client.post(sidecar.token_url, data=body, headers=FORM) as response:
        generated = response.headers["X-Request-Id"]
    assert len(generated) == 32
    assert sidecar.upstream.last.headers["X-Request-Id"] == generated
    # A value that could smuggle anything is replaced.
    async with client.post(sidecar.token_url, data=body,
                           headers={**FORM, "X-Request-Id": "a b\tc"}) as response:
        assert response.headers["X-Request-Id"] != "a b\tc"


async def test_errors_carry_the_request_id(client: aiohttp.ClientSession,
                                           sidecar: Sidecar) -> None:
    async with client.post(sidecar.token_url, data="grant_type=magic&client_id=a",
                           headers={**FORM, "X-Request-Id": "r-1"}) as response:
        assert response.status == 400
        assert response.headers["X-Request-Id"] == "r-1"
        assert (await response.json())["error"] == "unsupported_grant_type"


async def test_no_store_is_enforced_on_token_responses(client: aiohttp.ClientSession,
                                                       sidecar: Sidecar) -> None:
    sidecar.upstream.token_headers = {"Cache-Control": "public, max-age=600"}
    async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                           headers=FORM) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Pragma"] == "no-cache"


async def test_upstream_errors_are_relayed(client: aiohttp.ClientSession,
                                           sidecar: Sidecar) -> None:
    sidecar.upstream.token_status = 400
    sidecar.upstream.token_body = {"error": "invalid_grant", "error_description": "expired"}
    async with client.post(sidecar.token_url, data="grant_type=refresh_token&refresh_token=x"
                                                   "&client_id=a", headers=FORM) as response:
        assert response.status == 400
        assert await response.json() == sidecar.upstream.token_body


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_upstream_refused_is_502(client: aiohttp.ClientSession,
                                       sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(upstream_url=f"http://127.0.0.1:{_free_port()}")
    async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                           headers=FORM) as response:
        assert response.status == 502
        body = await response.json()
        assert body["error"] == "server_error"
        assert response.headers["Cache-Control"] == "no-store"
    async with client.get(sidecar.url + "/elsewhere") as response:
        assert response.status == 502
        assert (await response.json())["error"] == "server_error"


@pytest.mark.parametrize(("answer", "detail"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     "MalformedAnswerError"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"access_token\"", "ServerDisconnectedError"),
    (b"\x16\x03\x01 not HTTP at all", "MalformedAnswerError"),
], ids=["a length and chunked", "cut short", "not HTTP"])
async def test_a_broken_upstream_answer_is_a_502_never_a_500(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, answer: bytes,
        detail: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="token_sidecar.access")

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        sidecar = await sidecar_factory(upstream_url=f"http://127.0.0.1:{port}")
        async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                               headers=FORM) as response:
            assert response.status == 502
            assert (await response.json())["error"] == "server_error"
            assert response.headers["Cache-Control"] == "no-store"
    finally:
        server.close()
        await server.wait_closed()
    lines = [r for r in caplog.records if r.name == "token_sidecar.access"]
    assert [getattr(r, FIELDS_ATTRIBUTE)["detail"] for r in lines] == [detail]


async def test_upstream_timeout_is_504(client: aiohttp.ClientSession,
                                       sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(upstream={"timeout_seconds": 0.2})
    sidecar.upstream.delay_seconds = 1.0
    async with client.post(sidecar.token_url, data="grant_type=client_credentials&client_id=a",
                           headers=FORM) as response:
        assert response.status == 504
        assert (await response.json())["error"] == "temporarily_unavailable"
    # Sent once, never retried.
    assert len(sidecar.upstream.received) == 1


async def test_other_paths_pass_through_unchanged(client: aiohttp.ClientSession,
                                                  sidecar: Sidecar) -> None:
    # (Metadata documents are the exception: tests/http/test_bound_tokens.py.)
    async with client.get(sidecar.url + "/userinfo?x=1%202") as response:
        assert response.status == 200
        assert response.headers["X-Echo"] == "1"
        assert await response.json() == {
            "method": "GET", "path": "/userinfo", "query": "x=1%202",
            "body_length": 0}
    async with client.post(sidecar.url + "/authorize", data=b"a=1&a=2") as response:
        # Strict parsing belongs to the token endpoint only.
        assert response.status == 200
    assert sidecar.upstream.last.body == b"a=1&a=2"


async def test_fifty_megabytes_stream_through(client: aiohttp.ClientSession,
                                              sidecar: Sidecar) -> None:
    size = 50 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        block = b"y" * 65536
        for _ in range(size // len(block)):
            yield block

    async with client.put(sidecar.url + "/upload", data=body()) as response:
        assert response.status == 200
        assert (await response.json())["received"] == size
    received = 0
    async with client.get(sidecar.url + f"/download/{size}") as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(65536):
            received += len(chunk)
    assert received == size


async def test_no_header_is_invented_for_the_upstream(sidecar: Sidecar) -> None:
    # A proxy passes on what the client sent: no User-Agent, no Content-Type, and no
    # Accept-Encoding the client could not decode (the token endpoint asks for identity: it
    # reads the answer itself). aiohttp's own `Accept: */*` is added when none was sent.
    passed = await send_raw(sidecar.url, "/userinfo", method="GET")
    assert passed.status == 200
    received = sidecar.upstream.last.headers
    assert {"User-Agent", "Content-Type", "Accept-Encoding"}.isdisjoint(received)
    assert received["Accept"] == "*/*"
    answer = await send_raw(sidecar.url, "/token", body=b"grant_type=client_credentials",
                            headers={**FORM, "Authorization": basic("billing", "s3cret"),
                                     "Accept": "application/json"})
    assert answer.status == 200
    received = sidecar.upstream.last.headers
    assert "User-Agent" not in received
    assert (received["Accept-Encoding"], received["Accept"]) == ("identity", "application/json")
