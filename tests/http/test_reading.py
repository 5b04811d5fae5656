"""README "What one token request goes through", step 1, through real HTTP: method, content
type, body limit, strict form parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import Sidecar, SidecarFactory

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def post(client: aiohttp.ClientSession, sidecar: Sidecar, body: bytes | str,
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], dict[str, str]]:
    async with client.post(sidecar.token_url, data=body, headers=headers or FORM) as response:
        return response.status, dict(response.headers), await response.json()


def assert_oauth_error(status: int, headers: dict[str, str], body: dict[str, str],
                       expected_status: int, code: str) -> None:
    assert status == expected_status
    assert body["error"] == code
    assert body["error_description"]
    assert headers["Content-Type"] == "application/json"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "PROPFIND"])
async def test_only_post_is_accepted(client: aiohttp.ClientSession, sidecar: Sidecar,
                                     method: str) -> None:
    async with client.request(method, sidecar.token_url) as response:
        body = await response.json()
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert body["error"] == "invalid_request"
    assert sidecar.upstream.received == []


async def test_cors_preflight_reaches_the_upstream(client: aiohttp.ClientSession,
                                                   sidecar: Sidecar) -> None:
    headers = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with client.options(sidecar.token_url, headers=headers) as response:
        assert response.status == 200
    assert sidecar.upstream.last.method == "OPTIONS"


@pytest.mark.parametrize("content_type", [
    "application/json", "text/plain", "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded; charset=iso-8859-1",
])
async def test_content_type_must_be_form(client: aiohttp.ClientSession, sidecar: Sidecar,
                                         content_type: str) -> None:
    result = await post(client, sidecar, "grant_type=client_credentials",
                        {"Content-Type": content_type})
    assert_oauth_error(*result, 400, "invalid_request")
    assert sidecar.upstream.received == []


async def test_charset_utf8_is_allowed(client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    status, _, _ = await post(client, sidecar, "grant_type=client_credentials&client_id=a",
                              {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    assert status == 200


async def test_body_over_the_limit_is_413(client: aiohttp.ClientSession,
                                          sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(server={"max_body_bytes": 100})
    result = await post(client, sidecar, "grant_type=client_credentials&scope=" + "a" * 200)
    assert_oauth_error(*result, 413, "invalid_request")
    assert sidecar.upstream.received == []


async def test_chunked_body_over_the_limit_is_413(client: aiohttp.ClientSession,
                                                  sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(server={"max_body_bytes": 100})

    async def chunks() -> AsyncIterator[bytes]:
        yield b"grant_type=client_credentials&scope="
        for _ in range(10):
            yield b"a" * 50

    async with client.post(sidecar.token_url, data=chunks(), headers=FORM) as response:
        assert response.status == 413
        assert (await response.json())["error"] == "invalid_request"
    assert sidecar.upstream.received == []


@pytest.mark.parametrize(("body", "why"), [
    (b"grant_type=client_credentials&grant_type=client_credentials", "repeated"),
    (b"grant_type=client_credentials&scope=a&scope=b", "repeated scope"),
    (b"grant_type=client_credentials&scope=%zz", "bad escape"),
    (b"grant_type=client_credentials&scope=%e2%82", "truncated UTF-8"),
    (b"grant_type=client_credentials&scope=\xff", "raw invalid UTF-8"),
    (b"grant_type=client_credentials&=x", "empty name"),
    (b"grant_type=client_credentials&scope=%", "lone percent"),
])
async def test_strict_form_parsing(client: aiohttp.ClientSession, sidecar: Sidecar,
                                   body: bytes, why: str) -> None:
    result = await post(client, sidecar, body)
    assert_oauth_error(*result, 400, "invalid_request")
    assert sidecar.upstream.received == [], why


async def test_resource_and_audience_may_repeat(client: aiohttp.ClientSession,
                                                sidecar: Sidecar) -> None:
    body = ("grant_type=client_credentials&client_id=a&resource=https%3A%2F%2Fapi.example%2Fa"
            "&resource=https%3A%2F%2Fapi.example%2Fb&audience=x&audience=y")
    status, _, _ = await post(client, sidecar, body)
    assert status == 200
    # The body reaches the upstream byte for byte.
    assert sidecar.upstream.last.body == body.encode()


async def test_empty_values_count_as_omitted(client: aiohttp.ClientSession,
                                             sidecar: Sidecar) -> None:
    # RFC 6749 §3.1: a parameter without a value is treated as omitted, so it is no repeat.
    status, _, _ = await post(client, sidecar, "grant_type=client_credentials&scope=&scope=a"
                                               "&client_id=a")
    assert status == 200
