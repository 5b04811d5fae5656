"""What the client sent reaches the upstream as it was sent: no second `Expect`, no body
inflated behind its label, no header byte rewritten (issue 13, section 5)."""

from __future__ import annotations

import gzip

import aiohttp
import pytest

from tests.conftest import Sidecar, SidecarFactory
from tests.support.servers import raw_request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = "grant_type=client_credentials&client_id=a"


@pytest.mark.parametrize("path", ["/token", "/authorize"])
async def test_expect_100_continue_is_answered_once_and_not_forwarded(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, path: str) -> None:
    """The sidecar has said `100 Continue` already; an upstream that never does must not
    leave the request waiting for it until `upstream.timeout_seconds` (then 504)."""
    sidecar = await sidecar_factory(upstream={"timeout_seconds": 3})
    sidecar.upstream.sends_continue = False
    async with client.post(sidecar.url + path, data=BODY, headers=FORM,
                           expect100=True) as response:
        assert response.status == 200
    assert "Expect" not in sidecar.upstream.last.headers
    assert sidecar.upstream.last.body == BODY.encode()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip", "x-custom"])
async def test_a_content_coded_token_request_is_415(
        client: aiohttp.ClientSession, sidecar: Sidecar, coding: str) -> None:
    async with client.post(sidecar.token_url, data=gzip.compress(BODY.encode()),
                           headers={**FORM, "Content-Encoding": coding}) as response:
        assert response.status == 415
        assert response.headers["Accept-Encoding"] == "identity"
        assert response.headers["Cache-Control"] == "no-store"
        assert (await response.json())["error"] == "invalid_request"
    assert sidecar.upstream.received == []
    async with client.post(sidecar.token_url, data=BODY,
                           headers={**FORM, "Content-Encoding": "identity"}) as response:
        assert response.status == 200
    assert sidecar.upstream.last.body == BODY.encode()


@pytest.mark.parametrize("body", [gzip.compress(b'{"a": 1}' * 100, mtime=0), b"not gzip at all"],
                         ids=["gzip", "not-gzip"])
async def test_a_coded_body_passes_through_byte_for_byte(
        client: aiohttp.ClientSession, sidecar: Sidecar, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    async with client.post(sidecar.url + "/api/upload", data=body, headers=headers) as response:
        assert response.status == 200
    received = sidecar.upstream.last
    assert received.body == body
    assert received.headers["Content-Encoding"] == "gzip"


def _as_sent(value: str) -> bytes:
    # aiohttp (the test upstream too) keeps undecodable bytes as surrogates: this undoes it.
    return value.encode("utf-8", "surrogateescape")


@pytest.mark.parametrize("path", ["/token", "/userinfo"])
async def test_obs_text_header_values_reach_the_upstream_as_sent(sidecar: Sidecar,
                                                                path: str) -> None:
    raw = (f"POST {path} HTTP/1.1\r\nHost: as.example.com\r\nConnection: close\r\n"
           f"Content-Type: application/x-www-form-urlencoded\r\n"
           f"Content-Length: {len(BODY)}\r\n").encode()
    raw += b"X-Name: Ren\xe9e\r\nX-Mixed: caf\xc3\xa9 \xff\xfe\r\n\r\n" + BODY.encode()
    answer = await raw_request(sidecar.url, raw)
    assert answer.status == 200
    received = sidecar.upstream.last.headers
    assert _as_sent(received["X-Name"]) == b"Ren\xe9e"
    assert _as_sent(received["X-Mixed"]) == b"caf\xc3\xa9 \xff\xfe"


async def test_obs_text_in_the_upstream_answer_reaches_the_client_as_sent(
        sidecar: Sidecar) -> None:
    sidecar.upstream.token_headers = {"X-Realm": "Ren\udce9e"}  # the bytes b"Ren\xe9e"
    raw = (f"POST /token HTTP/1.1\r\nHost: as.example.com\r\nConnection: close\r\n"
           f"Content-Type: application/x-www-form-urlencoded\r\n"
           f"Content-Length: {len(BODY)}\r\n\r\n{BODY}").encode()
    answer = await raw_request(sidecar.url, raw)
    assert answer.status == 200
    assert b"\r\nX-Realm: Ren\xe9e\r\n" in answer.head
