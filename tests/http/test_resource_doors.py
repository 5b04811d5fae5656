"""The check-only listener of the resource side (`resource.check_listen`), through real HTTP
as each proxy sends its questions: Envoy's ext_authz HTTP service (the original method, path
and headers), nginx `auth_request` (a subrequest with X-Original-Method / X-Original-URI),
Traefik forwardAuth (X-Forwarded-Method / -Proto / -Host / -Uri). The method and URL a proof
is checked against come from those headers only when a trusted proxy sent them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp import web
from multidict import CIMultiDict

from sidecar.adapters.redis.store import RedisStore
from sidecar.http.app import build_app
from sidecar.http.resource_doors import build_check_app
from tests.conftest import make_settings
from tests.http.test_certificates import nginx_escaped, s256
from tests.support.dpop import DpopKey
from tests.support.redis_server import RedisServer
from tests.support.resource import API_ORIGIN, API_PATH, api_proof, bind, resource_settings
from tests.support.servers import RecordingUpstream, start_app


@dataclass
class Door:
    check_url: str
    store: RedisStore


Start = Callable[..., Awaitable[Door]]


@pytest.fixture
async def open_door(upstream: RecordingUpstream,
                    redis_server_session: RedisServer) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []
    stores: list[RedisStore] = []

    async def start(store: RedisStore | None = None, **sections: dict[str, Any]) -> Door:
        if store is None:
            store = RedisStore.from_url(redis_server_session.url, f"doors-{uuid.uuid4().hex}:")
            stores.append(store)
        # Check-only: no prefixes, no API upstream.
        resource = resource_settings("", prefixes=[], check_listen="127.0.0.1:1",
                                     **sections.pop("resource", {}))
        app = build_app(make_settings(upstream.url, resource=resource, **sections), store=store)
        token_runner, _ = await start_app(app)
        check_runner, check_url = await start_app(build_check_app(app))
        runners.extend([check_runner, token_runner])
        return Door(check_url, store)

    yield start
    for runner in runners:
        await runner.cleanup()
    for store in stores:
        await store.close()


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes


async def ask(client: aiohttp.ClientSession, method: str, url: str,
              headers: dict[str, str] | CIMultiDict[str]) -> Answer:
    async with client.request(method, url, headers=headers) as response:
        return Answer(response.status, response.headers, await response.read())


async def bound(door: Door) -> tuple[DpopKey, str]:
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(door.store, token, jkt=key.jkt, client_id="app", scope="read")
    return key, token


async def test_envoy_ext_authz_allows_with_the_headers_for_the_api(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door()
    key, token = await bound(door)
    # Envoy's HTTP check request: the original method and path (with its query), the
    # original headers that allowed_headers lets through, no body.
    answer = await ask(client, "POST", door.check_url + API_PATH + "?page=2", {
        "Host": "api.example.com", "Authorization": f"DPoP {token}",
        "DPoP": api_proof(key, token, htm="POST"), "Content-Length": "0",
        "X-Token-Admin": "yes", "X-Token-Client-Id": "forged"})
    assert answer.status == 200 and answer.body == b""
    assert answer.headers["Authorization"] == f"Bearer {token}"
    assert answer.headers["X-Token-DPoP-JKT"] == key.jkt
    assert answer.headers["X-Token-Client-Id"] == "app"
    # What Envoy removes from the request upstream: the proof, the client's own X-Token-*
    # that no allowed upstream header overrides.
    assert answer.headers["x-envoy-auth-headers-to-remove"] == "dpop,x-token-admin"


async def test_envoy_ext_authz_denial_is_returned_as_it_is(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door()
    _, token = await bound(door)
    answer = await ask(client, "GET", door.check_url + API_PATH, {
        "Authorization": f"DPoP {token}", "DPoP": api_proof(DpopKey(), token)})
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert b"invalid_dpop_proof" in answer.body
    assert "Authorization" not in answer.headers
    answer = await ask(client, "GET", door.check_url + API_PATH, {
        "Authorization": f"Bearer {token}"})
    assert answer.status == 401
    assert token not in str(answer.headers)


async def test_nginx_auth_request_checks_the_original_method_and_uri(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door()
    key, token = await bound(door)
    # The subrequest: GET to the check location; the original request was a POST.
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-Method": "POST", "X-Original-URI": API_PATH + "?q=1",
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, htm="POST")})
    assert answer.status == 200
    assert answer.headers["Authorization"] == f"Bearer {token}"
    # A proof for the subrequest's own method does not pass.
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-Method": "POST", "X-Original-URI": API_PATH,
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, htm="GET")})
    assert answer.status == 401


async def test_nginx_gets_401_where_the_check_would_say_400(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    # nginx turns any status but 2xx, 401 and 403 from a subrequest into its own 500.
    door = await open_door()
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-URI": API_PATH, "Authorization": "DPoP x"})
    assert answer.status == 401
    assert 'error="invalid_request"' in answer.headers["WWW-Authenticate"]
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-Method": "GET", "X-Original-URI": "/api/../token",
        "Authorization": "DPoP x"})
    assert answer.status == 401


async def test_traefik_forward_auth(client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door()
    key, token = await bound(door)
    answer = await ask(client, "GET", door.check_url + "/", {
        "X-Forwarded-Method": "DELETE", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.com", "X-Forwarded-Uri": API_PATH,
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, htm="DELETE")})
    assert answer.status == 200
    assert answer.headers["X-Token-Scope"] == "read"
    # The origin is resource.public_origin: X-Forwarded-Host does not choose it.
    answer = await ask(client, "GET", door.check_url + "/", {
        "X-Forwarded-Method": "GET", "X-Forwarded-Host": "evil.example.com",
        "X-Forwarded-Uri": API_PATH, "Authorization": f"DPoP {token}",
        "DPoP": api_proof(key, token, htu="https://evil.example.com" + API_PATH)})
    assert answer.status == 401


@pytest.mark.parametrize("added", [
    # Traefik passes the client's headers on: another door's headers, or a second URI.
    {"X-Original-Method": "GET", "X-Original-URI": "/api/other"},
    {"X-Forwarded-Uri": "/api/other"},
])
async def test_a_client_cannot_name_another_request_beside_the_proxys(
        client: aiohttp.ClientSession, open_door: Start, added: dict[str, str]) -> None:
    door = await open_door()
    key, token = await bound(door)
    headers = CIMultiDict({"X-Forwarded-Method": "DELETE", "X-Forwarded-Uri": API_PATH,
                           "Authorization": f"DPoP {token}",
                           "DPoP": api_proof(key, token, htu=API_ORIGIN + "/api/other")})
    for name, value in added.items():
        headers.add(name, value)  # a second X-Forwarded-Uri is added, not replaced
    answer = await ask(client, "GET", door.check_url + "/", headers)
    # Refused (401 where one of the doors is nginx's, which honours no 400), never allowed.
    assert answer.status in (400, 401)
    assert b"more than one original request" in answer.body
    assert "Authorization" not in answer.headers


async def test_original_request_headers_from_an_untrusted_peer_are_ignored(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door(trust={"trusted_proxies": ["10.9.9.9/32"]})
    key, token = await bound(door)
    for headers in ({"X-Original-Method": "GET", "X-Original-URI": API_PATH},
                    {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": API_PATH}):
        answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
            **headers, "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token)})
        # Checked against the request's own path: the proof for the API does not match.
        assert answer.status == 401
        assert 'error="invalid_dpop_proof"' in answer.headers["WWW-Authenticate"]


async def test_a_certificate_bound_token_through_the_trusted_proxys_header(
        client: aiohttp.ClientSession, open_door: Start) -> None:
    door = await open_door()
    pem = trustme.CA().issue_cert("client.example").cert_chain_pems[0].bytes().decode()
    await bind(door.store, "at-cert", x5t_s256=s256(pem), client_id="mtls-app")
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-Method": "GET", "X-Original-URI": API_PATH,
        "Authorization": "Bearer at-cert", "X-SSL-Client-Cert": nginx_escaped(pem)})
    assert answer.status == 200
    assert answer.headers["X-Token-Client-Cert-S256"] == s256(pem)
    answer = await ask(client, "GET", door.check_url + "/_token_sidecar_check", {
        "X-Original-Method": "GET", "X-Original-URI": API_PATH,
        "Authorization": "Bearer at-cert"})
    assert answer.status == 401


async def test_a_nonce_is_asked_for_through_the_door(
        client: aiohttp.ClientSession, open_door: Start, tmp_path: Any) -> None:
    secret = tmp_path / "nonce"
    secret.write_text("z" * 40)
    door = await open_door(resource={"nonce_required": True, "nonce_secret_file": str(secret)})
    key, token = await bound(door)
    answer = await ask(client, "GET", door.check_url + API_PATH, {
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token)})
    assert answer.status == 401
    nonce = answer.headers["DPoP-Nonce"]
    answer = await ask(client, "GET", door.check_url + API_PATH, {
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, nonce=nonce)})
    assert answer.status == 200


async def test_a_store_that_cannot_answer_is_503(
        client: aiohttp.ClientSession, open_door: Start, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "doors-down:")
    try:
        door = await open_door(store)
        key, token = await bound(door)
        redis_server.kill()
        answer = await ask(client, "GET", door.check_url + API_PATH, {
            "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token)})
        assert answer.status == 503
        assert "Authorization" not in answer.headers
    finally:
        await store.close()
