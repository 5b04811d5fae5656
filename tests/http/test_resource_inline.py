"""The inline door of the resource side, through real HTTP (README "The resource side"):
a client calls an API under `resource.prefixes` on the sidecar's main port; what reaches the
API (a real upstream that records what it got) is Bearer, without the proof, with the
check's context and none of the client's own context headers; a refusal never reaches it;
a store that cannot answer is a 503. The binding comes from the sidecar's own token side."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sidecar.adapters.redis.store import RedisStore
from sidecar.http.app import build_admin_app, build_app
from sidecar.logs import FIELDS_ATTRIBUTE
from sidecar.ports import ReplayStore
from tests.conftest import TOKEN_URL_PUBLIC, make_settings
from tests.support.dpop import DpopKey
from tests.support.redis_server import RedisServer
from tests.support.resource import API_ORIGIN, API_PATH, API_URL, api_proof, bind, resource_settings
from tests.support.servers import RecordingUpstream, raw_request, start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Deployment:
    url: str  # the sidecar's main port
    admin_url: str
    api: RecordingUpstream  # what the API received
    upstream: RecordingUpstream  # the authorization server

    async def metric(self, client: aiohttp.ClientSession, result_code: str) -> float:
        async with client.get(self.admin_url + "/metrics") as response:
            text = await response.text()
        wanted = f'token_sidecar_resource_requests_total{{result_code="{result_code}"}} '
        lines = [line for line in text.splitlines() if line.startswith(wanted)]
        return float(lines[0].rsplit(" ", 1)[1]) if lines else 0.0


Start = Callable[..., Awaitable[Deployment]]


@pytest.fixture
async def deploy(upstream: RecordingUpstream, api: RecordingUpstream
                 ) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def start(store: ReplayStore | None = None, **sections: dict[str, Any]) -> Deployment:
        resource = resource_settings(api.url, **sections.pop("resource", {}))
        settings = make_settings(upstream.url, resource=resource, **sections)
        app = build_app(settings, store=store)
        runner, url = await start_app(app)
        admin_runner, admin_url = await start_app(build_admin_app(app))
        runners.extend([runner, admin_runner])
        return Deployment(url, admin_url, api, upstream)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def redis_store(redis_server_session: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_session.url, f"inline-{uuid.uuid4().hex}:")
    yield store
    await store.close()


def dpop_headers(key: DpopKey, token: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, **claims)}


async def test_a_token_from_the_token_side_works_at_the_api_only_with_its_key(
        client: aiohttp.ClientSession, deploy: Start, redis_store: RedisStore) -> None:
    deployment = await deploy(redis_store)
    key = DpopKey()
    async with client.post(deployment.url + "/token",
                           data="grant_type=client_credentials&client_id=app&scope=read",
                           headers={**FORM, "DPoP": key.proof(TOKEN_URL_PUBLIC)}) as response:
        issued = await response.json()
    assert (response.status, issued["token_type"]) == (200, "DPoP")
    token = issued["access_token"]
    async with client.get(deployment.url + API_PATH,
                          headers=dpop_headers(key, token)) as response:
        assert response.status == 200
        assert response.headers["X-Echo"] == "1"  # the API's own answer, streamed back
    reached = deployment.api.last
    assert reached.headers["Authorization"] == f"Bearer {token}"
    assert "DPoP" not in reached.headers
    assert reached.context == {"X-Token-Client-Id": "app", "X-Token-DPoP-JKT": key.jkt,
                               "X-Token-Scope": "read"}
    # Another key, or the token as Bearer: refused, and nothing more reached the API.
    async with client.get(deployment.url + API_PATH,
                          headers=dpop_headers(DpopKey(), token)) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith(
            'DPoP error="invalid_dpop_proof"')
    async with client.get(deployment.url + API_PATH,
                          headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 401
        assert response.headers.getall("WWW-Authenticate")[0].startswith(
            'Bearer error="invalid_token"')
        assert (await response.json())["error"] == "invalid_token"
    assert len(deployment.api.received) == 1


async def test_what_reaches_the_api(client: aiohttp.ClientSession, deploy: Start,
                                    redis_store: RedisStore) -> None:
    deployment = await deploy(redis_store)
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(redis_store, token, jkt=key.jkt, client_id="app", scope="read write")
    body = json.dumps({"item": "x" * 100_000}).encode()
    headers = {**dpop_headers(key, token, htm="POST"), "Content-Type": "application/json",
               "X-Token-Client-Id": "forged", "X-Token-Admin": "yes", "X-Custom": "kept"}
    async with client.post(deployment.url + API_PATH + "?page=2", data=body,
                           headers=headers) as response:
        assert response.status == 200
        assert (await response.json())["body_length"] == len(body)
    reached = deployment.api.last
    assert (reached.method, reached.path, reached.query, reached.body) == (
        "POST", API_PATH, "page=2", body)
    assert reached.headers["X-Custom"] == "kept"
    assert reached.context == {"X-Token-Client-Id": "app", "X-Token-DPoP-JKT": key.jkt,
                               "X-Token-Scope": "read write"}


async def test_context_spelled_with_underscores_never_reaches_the_api(
        deploy: Start, redis_store: RedisStore) -> None:
    deployment = await deploy(redis_store)
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(redis_store, token, jkt=key.jkt)
    host = deployment.url.removeprefix("http://")
    answer = await raw_request(deployment.url, (
        f"GET {API_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: DPoP {token}\r\n"
        f"DPoP: {api_proof(key, token)}\r\nX_Token_Subject: admin\r\n"
        "X-TOKEN-SCOPE: everything\r\nConnection: close\r\n\r\n").encode())
    assert answer.status == 200
    names = {name.lower().replace("_", "-") for name in deployment.api.last.headers}
    assert "x-token-subject" not in names
    assert deployment.api.last.headers["X-Token-Scope"] == "read"


async def test_an_unbound_bearer_token_passes_as_it_came(
        client: aiohttp.ClientSession, deploy: Start, redis_store: RedisStore) -> None:
    deployment = await deploy(redis_store)
    async with client.get(deployment.url + API_PATH, headers={
            "Authorization": "Bearer opaque-1", "X-Token-Client-Id": "forged"}) as response:
        assert response.status == 200
    reached = deployment.api.last
    assert reached.headers["Authorization"] == "Bearer opaque-1"
    assert reached.context == {}


async def test_a_lenient_spelling_of_the_prefix_is_checked_too(
        client: aiohttp.ClientSession, deploy: Start) -> None:
    deployment = await deploy(resource={"bearer": "deny"})
    for path in ("/API/things", "/%61pi/things", "/api"):
        async with client.get(deployment.url + path) as response:
            assert response.status == 401, path
    assert not deployment.api.received


async def test_other_paths_go_to_the_authorization_server_unchecked(
        client: aiohttp.ClientSession, deploy: Start) -> None:
    deployment = await deploy(resource={"bearer": "deny"})
    async with client.get(deployment.url + "/apix/userinfo") as response:
        assert response.status == 200
    assert deployment.upstream.last.path == "/apix/userinfo"
    assert not deployment.api.received


async def test_a_cors_preflight_goes_to_the_api_unchecked(
        client: aiohttp.ClientSession, deploy: Start) -> None:
    deployment = await deploy(resource={"bearer": "deny"})
    async with client.options(deployment.url + API_PATH, headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "GET",
            # Not a browser's: credentials the check never looked at.
            "Authorization": "Bearer stolen-token", "DPoP": "a-proof"}) as response:
        assert response.status == 200
    reached = deployment.api.last
    assert reached.method == "OPTIONS"
    assert "Authorization" not in reached.headers and "DPoP" not in reached.headers


async def test_a_store_that_cannot_answer_is_503_and_nothing_reaches_the_api(
        client: aiohttp.ClientSession, deploy: Start, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "inline-down:")
    try:
        deployment = await deploy(store)
        key, token = DpopKey(), "at-down"
        await bind(store, token, jkt=key.jkt)
        redis_server.kill()
        async with client.get(deployment.url + API_PATH,
                              headers=dpop_headers(key, token)) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert "WWW-Authenticate" not in response.headers
            assert (await response.json())["error"] == "temporarily_unavailable"
        assert not deployment.api.received
        assert await deployment.metric(client, "resource.source_unavailable") == 1
    finally:
        await store.close()


async def test_an_api_that_cannot_be_reached_is_502(
        client: aiohttp.ClientSession, upstream: RecordingUpstream, redis_store: RedisStore
) -> None:
    settings = make_settings(upstream.url, resource=resource_settings("http://127.0.0.1:9"))
    runner, url = await start_app(build_app(settings, store=redis_store))
    try:
        async with client.get(url + API_PATH, headers={"Authorization": "Bearer x"}) as response:
            assert response.status == 502
            assert (await response.json())["error_description"] == \
                "The API could not be reached."
    finally:
        await runner.cleanup()


async def test_protected_resource_metadata(client: aiohttp.ClientSession,
                                           deploy: Start) -> None:
    deployment = await deploy()
    async with client.get(deployment.url + "/.well-known/oauth-protected-resource") as response:
        assert response.status == 200
        document = await response.json()
    assert document["resource"] == API_ORIGIN
    assert document["authorization_servers"] == ["https://as.example.com"]
    assert document["dpop_bound_access_tokens_required"] is False
    assert "ES256" in document["dpop_signing_alg_values_supported"]
    assert document["bearer_methods_supported"] == ["header"]
    assert not deployment.upstream.received


async def test_one_log_line_and_one_count_per_check_without_secrets(
        client: aiohttp.ClientSession, deploy: Start, redis_store: RedisStore,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="token_sidecar.access")
    deployment = await deploy(redis_store)
    key, token = DpopKey(), "at-secret-" + uuid.uuid4().hex
    await bind(redis_store, token, jkt=key.jkt, client_id="app")
    proof = api_proof(key, token)
    for _ in range(2):  # the second is a replay
        async with client.get(deployment.url + API_PATH,
                              headers={"Authorization": f"DPoP {token}", "DPoP": proof}):
            pass
    lines = [getattr(r, FIELDS_ATTRIBUTE) for r in caplog.records
             if r.name == "token_sidecar.access"]
    assert [(line["result_code"], line["status"], line["door"]) for line in lines] == [
        ("resource.allowed", 200, "inline"), ("resource.replayed", 401, "inline")]
    assert lines[0]["client_id"] == "app" and lines[0]["dpop_jkt"] == key.jkt
    assert lines[0]["token_source"] == "recorded"
    assert token not in caplog.text and proof not in caplog.text
    assert await deployment.metric(client, "resource.allowed") == 1
    assert await deployment.metric(client, "resource.replayed") == 1


async def test_a_nonce_mode_client_retries_and_gets_through(
        client: aiohttp.ClientSession, deploy: Start, redis_store: RedisStore,
        tmp_path: Any) -> None:
    secret = tmp_path / "nonce"
    secret.write_text("r" * 40)
    deployment = await deploy(redis_store, resource={"nonce_required": True,
                                                     "nonce_secret_file": str(secret)})
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(redis_store, token, jkt=key.jkt)
    async with client.get(deployment.url + API_PATH, headers=dpop_headers(key, token)) as first:
        assert first.status == 401
        assert 'error="use_dpop_nonce"' in first.headers["WWW-Authenticate"]
        nonce = first.headers["DPoP-Nonce"]
    async with client.get(deployment.url + API_PATH,
                          headers=dpop_headers(key, token, nonce=nonce)) as second:
        assert second.status == 200
    assert API_URL.endswith(deployment.api.last.path)
