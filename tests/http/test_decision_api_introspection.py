"""`POST /api/auth/introspection`, the resource-side check as a call: the resource side's
conformance table (tests/conformance/test_rfc9449_resource.py) sent through the decision API
instead of the inline door decides alike, row for row. One table, two doors.

The call is what a resource server makes of the API call it received: `token` from
`Authorization`, `dpop` from the one `DPoP` header, `htm` and `htu` the method and URL, the
certificate as PEM. Rows a resource server cannot express as a call are listed: two
`Authorization` or `DPoP` headers (it refuses those itself), no token at all, and a scheme
that disagrees with the proof (a call with `dpop` is the DPoP scheme, one without is Bearer,
as in the reference API)."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from multidict import CIMultiDict

from sidecar.adapters.redis.store import RedisStore
from sidecar.http.app import build_app
from sidecar.http.decision_api import ApiKeys, build_api_app, openapi_text
from tests.conformance.test_rfc9449_resource import (
    CASES,
    NONCE_SECRET,
    Case,
    Ctx,
    assert_denial,
    bind_as_the_case_says,
)
from tests.conftest import make_settings
from tests.support.redis_server import RedisServer
from tests.support.resource import API_ORIGIN, Answer, bind, resource_settings
from tests.support.servers import RecordingUpstream, start_app

API_KEY = "an-api-key-that-is-long-enough-0123456789"
NOT_EXPRESSIBLE = frozenset({
    "no Authorization: a challenge without error (RFC 6750 §3.1)",
    "two Authorization headers",
    "two DPoP headers (step 1)",
    "accepts the scheme in lower case (RFC 9110 §11.1)",
    "a DPoP-bound token as Bearer with a proof beside it (§7.1)",
    "DPoP scheme without a proof",
})
_CHALLENGES = re.compile(r", (?=(?:DPoP|Bearer) )")
DOCUMENTED = set(json.loads(openapi_text())["components"]["schemas"]["IntrospectionAnswer"]
                 ["properties"])


class NotExpressibleError(Exception):
    pass


@dataclass
class ApiCtx(Ctx):
    """The table's context, with calls going to the decision API."""

    api: str = ""
    last_answer: dict[str, Any] | None = None

    async def call(self, headers: list[tuple[str, str]], method: str = "GET",
                   path: str = "/api/things") -> Answer:
        sent = CIMultiDict(headers)
        authorization, proofs = sent.getall("Authorization", []), sent.getall("DPoP", [])
        if len(authorization) != 1 or len(proofs) > 1:
            raise NotExpressibleError
        scheme, _, token = authorization[0].partition(" ")
        if (scheme == "DPoP") != bool(proofs):
            raise NotExpressibleError  # the scheme and the proof tell different stories
        if scheme not in ("DPoP", "Bearer"):
            raise NotExpressibleError
        members: dict[str, Any] = {"token": token, "htm": method, "htu": API_ORIGIN + path}
        if proofs:
            members["dpop"] = proofs[0]
        if "X-SSL-Client-Cert" in sent:
            members["clientCertificate"] = unquote(sent["X-SSL-Client-Cert"])
        async with self.http.post(self.api + "/api/auth/introspection",
                                  data=io.BytesIO(json.dumps(members).encode()), headers={
                                      "Authorization": f"Bearer {API_KEY}",
                                      "Content-Type": "application/json"}) as response:
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json()
        self.last_answer = answer
        found: CIMultiDict[str] = CIMultiDict()
        for challenge in _CHALLENGES.split(answer.get("responseContent", "")):
            if challenge:
                found.add("WWW-Authenticate", challenge)
        if "dpopNonce" in answer:
            found["DPoP-Nonce"] = answer["dpopNonce"]
        return Answer(200 if answer["action"] == "OK" else answer["httpStatus"], found)


@dataclass
class Api:
    url: str
    store: RedisStore


@pytest.fixture
async def redis_store(redis_server_session: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_session.url, f"api-rs-{uuid.uuid4().hex}:")
    yield store
    await store.close()


async def _start(upstream: RecordingUpstream, store: RedisStore, tmp_path: Path,
                 **resource: Any) -> tuple[str, list[Any]]:
    secret = tmp_path / "nonce.secret"
    secret.write_text(NONCE_SECRET + "\n", encoding="utf-8")
    settings = make_settings(upstream.url, resource=resource_settings(
        upstream.url, nonce_secret_file=str(secret), **resource))
    token_app = build_app(settings, store=store)
    token_runner, _ = await start_app(token_app)
    api_runner, api = await start_app(build_api_app(token_app, ApiKeys((API_KEY,)), 262144))
    return api, [api_runner, token_runner]


def _expected_action(status: int) -> str:
    return {200: "OK", 400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN"}[status]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_a_call_decides_as_the_inline_door(
        case: Case, *, upstream: RecordingUpstream, redis_store: RedisStore,
        client: aiohttp.ClientSession, tmp_path: Path) -> None:
    api, runners = await _start(upstream, redis_store, tmp_path, **case.resource)
    try:
        ctx = ApiCtx(client, "", redis_store, api=api)
        await bind_as_the_case_says(case, ctx)
        try:
            answer = await case.run(ctx)
        except NotExpressibleError:
            assert case.name in NOT_EXPRESSIBLE
            return
        assert case.name not in NOT_EXPRESSIBLE
    finally:
        for runner in runners:
            await runner.cleanup()
    assert ctx.last_answer is not None
    assert set(ctx.last_answer) <= DOCUMENTED, set(ctx.last_answer) - DOCUMENTED
    assert ctx.last_answer["action"] == _expected_action(case.status)
    assert answer.status == case.status, ctx.last_answer
    assert ctx.token not in json.dumps(ctx.last_answer)
    assert upstream.received == []  # the API forwards nothing
    if case.status == 200:
        if case.bound == "jkt":
            # The key the proof was signed with (the table's, or the row's own Ed25519 one).
            assert len(ctx.last_answer["dpopJkt"]) == 43
            assert ctx.last_answer["clientId"] == "app"
        return
    assert_denial(case, answer)


async def test_the_resource_side_off_is_404(client: aiohttp.ClientSession,
                                            upstream: RecordingUpstream) -> None:
    token_app = build_app(make_settings(upstream.url))
    token_runner, _ = await start_app(token_app)
    api_runner, api = await start_app(build_api_app(token_app, ApiKeys((API_KEY,)), 262144))
    try:
        async with client.post(api + "/api/auth/introspection", json={
                "token": "t", "htm": "GET", "htu": "https://api.example.com/x"},
                headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            assert response.status == 404
            assert (await response.json())["resultCode"] == "api.resource_side_off"
    finally:
        await api_runner.cleanup()
        await token_runner.cleanup()


@pytest.mark.parametrize(("members", "message"), [
    ({"htm": "GET", "htu": API_ORIGIN + "/api/x"}, "token is required."),
    ({"token": "t", "htu": API_ORIGIN + "/api/x"}, "htm is required."),
    ({"token": "t", "htm": "GET"}, "htu is required."),
    ({"token": "t", "htm": "GET", "htu": "https://evil.example/api/x"},
     "htu is not a URL under resource.public_origin."),
    ({"token": "t", "htm": "GET", "htu": API_ORIGIN + "/x", "scopes": "read"},
     "scopes must be a list of at most 100 strings of at most 1024 characters."),
    ({"token": "t", "htm": "GET", "htu": API_ORIGIN + "/x", "parameters": ""},
     "Unknown member 'parameters'."),
])
async def test_bad_calls_are_400_naming_the_field(
        members: dict[str, Any], message: str, *, client: aiohttp.ClientSession,
        upstream: RecordingUpstream, redis_store: RedisStore, tmp_path: Path) -> None:
    api, runners = await _start(upstream, redis_store, tmp_path)
    try:
        async with client.post(api + "/api/auth/introspection", json=members,
                               headers={"Authorization": f"Bearer {API_KEY}"}) as response:
            assert response.status == 400
            answer = await response.json()
        assert (answer["resultCode"], answer["resultMessage"]) == ("api.bad_field", message)
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_scopes_in_the_call_are_required_too(
        client: aiohttp.ClientSession, upstream: RecordingUpstream, redis_store: RedisStore,
        tmp_path: Path) -> None:
    api, runners = await _start(upstream, redis_store, tmp_path)
    try:
        ctx = ApiCtx(client, "", redis_store, api=api)
        await bind(redis_store, ctx.token, jkt=ctx.key.jkt, scope="read")

        async def introspect(scopes: list[str]) -> dict[str, Any]:
            async with client.post(api + "/api/auth/introspection", json={
                    "token": ctx.token, "dpop": ctx.proof(), "htm": "GET",
                    "htu": API_ORIGIN + "/api/things", "scopes": scopes},
                    headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                answer: dict[str, Any] = await response.json()
                return answer

        allowed = await introspect(["read"])
        assert (allowed["action"], allowed["scopes"]) == ("OK", ["read"])
        assert allowed["expiresAt"] > time.time() * 1000
        refused = await introspect(["write"])
        assert (refused["action"], refused["httpStatus"]) == ("FORBIDDEN", 403)
        assert 'error="insufficient_scope"' in refused["responseContent"]
    finally:
        for runner in runners:
            await runner.cleanup()
