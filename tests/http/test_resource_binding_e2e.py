"""Where the binding comes from, end to end through the inline resource door (README "Where
the binding comes from"): a JWT access token with `cnf` from an authorization server that
serves its keys (RFC 9068), an opaque token bound only in the upstream's introspection answer
(RFC 7662), and the recorded binding first. Real HTTP everywhere: the API, the key server,
the introspection endpoint; the inline door and the check-only listener."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict

from sidecar.adapters.memory import MemoryStore
from sidecar.http.app import build_app
from sidecar.http.resource_doors import build_check_app
from sidecar.ports import SystemClock
from tests.conftest import Sidecar, SidecarFactory, make_settings
from tests.support.dpop import DpopKey
from tests.support.jwt_as import ISSUER, JwtAccessTokenServer
from tests.support.opaque_as import OpaqueTokenServer
from tests.support.resource import API_PATH, Answer, api_proof, bind, resource_settings
from tests.support.servers import RecordingUpstream, start_app

RS_ID, RS_SECRET = "api-gateway", "gateway-secret-0123456789"


@dataclass
class Api:
    sidecar: Sidecar
    store: MemoryStore
    http: aiohttp.ClientSession

    async def call(self, token: str, key: DpopKey | None, *, scheme: str = "DPoP") -> Answer:
        headers = {"Authorization": f"{scheme} {token}"}
        if key is not None:
            headers["DPoP"] = api_proof(key, token)
        async with self.http.get(self.sidecar.url + API_PATH, headers=headers) as response:
            await response.read()
            return Answer(response.status, CIMultiDict(response.headers))

    @property
    def reached(self) -> list[Any]:
        return [r for r in self.sidecar.upstream.received if r.path.startswith("/api/")]


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def jwt_as() -> AsyncIterator[JwtAccessTokenServer]:
    server = JwtAccessTokenServer()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


@pytest.fixture
async def opaque_as() -> AsyncIterator[OpaqueTokenServer]:
    server = OpaqueTokenServer(introspection_credentials=(RS_ID, RS_SECRET))
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


@pytest.fixture
async def guarded(sidecar_factory: SidecarFactory, upstream: RecordingUpstream,
                  tmp_path: Path, jwt_as: JwtAccessTokenServer, opaque_as: OpaqueTokenServer
                  ) -> AsyncIterator[ApiFactory]:
    """A sidecar whose resource side knows all three sources: the store, the JWT AS's keys,
    the opaque AS's introspection."""
    credentials = tmp_path / "introspection.toml"
    credentials.write_text(f'client_id = "{RS_ID}"\nclient_secret = "{RS_SECRET}"\n')
    async with aiohttp.ClientSession() as http:
        async def make(**resource: Any) -> Api:
            store = MemoryStore(10000, "test:", SystemClock())
            settings = resource_settings(
                upstream.url, jwks_uri=f"{jwt_as.url}/jwks",
                introspection_url=f"{opaque_as.url}/introspect",
                introspection_credentials_file=str(credentials), **resource)
            sidecar = await sidecar_factory(replay_store=store, server={"issuer": ISSUER},
                                            resource=settings)
            return Api(sidecar, store, http)

        yield make


# ---------------------------------------------------------------------------------------
# JWT access tokens (RFC 9068).


async def test_a_jwt_with_cnf_works_only_with_its_key(guarded: ApiFactory,
                                                      jwt_as: JwtAccessTokenServer) -> None:
    a = await guarded()
    key = DpopKey()
    token = jwt_as.token(cnf={"jkt": key.jkt}, sub="alice", client_id="app", scope="read")
    allowed = await a.call(token, key)
    assert allowed.status == 200
    [call] = a.reached
    assert call.headers["Authorization"] == f"Bearer {token}" and "DPoP" not in call.headers
    assert call.context == {"X-Token-Client-Id": "app", "X-Token-DPoP-JKT": key.jkt,
                            "X-Token-Subject": "alice", "X-Token-Scope": "read"}
    other = await a.call(token, DpopKey())
    assert other.status == 401 and "error=" in other.challenge("DPoP")
    as_bearer = await a.call(token, None, scheme="Bearer")
    assert as_bearer.status == 401
    assert 'error="invalid_token"' in as_bearer.challenge("Bearer")  # RFC 9449 §7.1
    assert len(a.reached) == 1


@pytest.mark.parametrize(("change", "code"), [
    ({"exp": 1_000_000_000}, "expired"),
    ({"iss": "https://evil.example.com"}, "wrong_issuer"),
    ({"typ": "JWT"}, "bad_typ"),
], ids=["expired", "another issuer", "typed JWT"])
async def test_a_jwt_that_fails_is_invalid_and_never_introspected(
        guarded: ApiFactory, jwt_as: JwtAccessTokenServer, opaque_as: OpaqueTokenServer,
        change: dict[str, Any], code: str) -> None:
    a = await guarded()
    key = DpopKey()
    token = jwt_as.token(cnf={"jkt": key.jkt}, **change)
    answer = await a.call(token, key)
    assert answer.status == 401
    assert 'error="invalid_token"' in answer.challenge("DPoP")
    assert token not in str(answer.headers)
    assert not opaque_as.introspection_bodies and not a.reached


async def test_a_typed_jwt_passes_when_configured(guarded: ApiFactory,
                                                  jwt_as: JwtAccessTokenServer) -> None:
    a = await guarded(jwt_allow_plain_typ=True, jwt_audiences=["https://api.example.com"])
    key = DpopKey()
    assert (await a.call(jwt_as.token(typ="JWT", cnf={"jkt": key.jkt}), key)).status == 200


async def test_an_unbound_jwt_as_bearer_follows_resource_bearer(
        guarded: ApiFactory, jwt_as: JwtAccessTokenServer) -> None:
    token = jwt_as.token()
    assert (await (await guarded()).call(token, None, scheme="Bearer")).status == 200
    denied = await (await guarded(bearer="deny")).call(token, None, scheme="Bearer")
    assert denied.status == 401


async def test_the_key_server_down_fails_closed(guarded: ApiFactory,
                                                jwt_as: JwtAccessTokenServer) -> None:
    a = await guarded()
    jwt_as.jwks_status = 500
    key = DpopKey()
    answer = await a.call(jwt_as.token(cnf={"jkt": key.jkt}), key)
    assert answer.status == 503 and answer.headers["Retry-After"]
    assert not a.reached


# ---------------------------------------------------------------------------------------
# Opaque tokens bound in the upstream's introspection answer (RFC 7662).


async def test_an_opaque_token_bound_only_in_introspection(
        guarded: ApiFactory, opaque_as: OpaqueTokenServer) -> None:
    a = await guarded()
    key = DpopKey()
    token = opaque_as.issue(client_id="app", sub="bob", scope="read write",
                            cnf={"jkt": key.jkt}, token_type="DPoP")
    assert (await a.call(token, key)).status == 200
    assert (await a.call(token, key)).status == 200
    assert len(opaque_as.introspection_bodies) == 1  # the answer was cached
    assert a.reached[-1].context["X-Token-Subject"] == "bob"
    assert a.reached[-1].context["X-Token-Scope"] == "read write"
    assert (await a.call(token, DpopKey())).status == 401
    assert (await a.call(token, None, scheme="Bearer")).status == 401
    assert len(a.reached) == 2


async def test_an_inactive_token_is_refused(guarded: ApiFactory,
                                            opaque_as: OpaqueTokenServer) -> None:
    answer = await (await guarded()).call("never-issued-token", DpopKey())
    assert answer.status == 401 and 'error="invalid_token"' in answer.challenge("DPoP")
    assert len(opaque_as.introspection_bodies) == 1


async def test_introspection_down_fails_closed(guarded: ApiFactory,
                                               opaque_as: OpaqueTokenServer) -> None:
    a = await guarded()
    key = DpopKey()
    token = opaque_as.issue(client_id="app", cnf={"jkt": key.jkt})
    opaque_as.introspection_status = 500
    assert (await a.call(token, key)).status == 503
    assert (await a.call(token, None, scheme="Bearer")).status == 503  # never "unbound"
    assert not a.reached


async def test_the_recorded_binding_comes_first(guarded: ApiFactory,
                                                opaque_as: OpaqueTokenServer) -> None:
    a = await guarded()
    recorded, claimed = DpopKey(), DpopKey()
    token = opaque_as.issue(client_id="app", cnf={"jkt": claimed.jkt})
    await bind(a.store, token, jkt=recorded.jkt)
    assert (await a.call(token, recorded)).status == 200
    assert not opaque_as.introspection_bodies


# ---------------------------------------------------------------------------------------
# The same sources behind the check-only listener (Envoy ext_authz).


async def test_the_check_listener_asks_the_same_sources(
        upstream: RecordingUpstream, tmp_path: Path, jwt_as: JwtAccessTokenServer,
        opaque_as: OpaqueTokenServer, client: aiohttp.ClientSession) -> None:
    credentials = tmp_path / "introspection.toml"
    credentials.write_text(f'client_id = "{RS_ID}"\nclient_secret = "{RS_SECRET}"\n')
    resource = resource_settings("", prefixes=[], check_listen="127.0.0.1:1",
                                 jwks_uri=f"{jwt_as.url}/jwks",
                                 introspection_url=f"{opaque_as.url}/introspect",
                                 introspection_credentials_file=str(credentials))
    app = build_app(make_settings(upstream.url, server={"issuer": ISSUER}, resource=resource))
    token_runner, _ = await start_app(app)
    check_runner, check_url = await start_app(build_check_app(app))
    try:
        key = DpopKey()
        for token in (jwt_as.token(cnf={"jkt": key.jkt}),
                      opaque_as.issue(client_id="app", cnf={"jkt": key.jkt})):
            headers = {"Authorization": f"DPoP {token}", "DPoP": api_proof(key, token)}
            async with client.get(check_url + API_PATH, headers=headers) as allowed:
                assert allowed.status == 200
                assert allowed.headers["X-Token-DPoP-JKT"] == key.jkt
            headers["DPoP"] = api_proof(DpopKey(), token)
            async with client.get(check_url + API_PATH, headers=headers) as refused:
                assert refused.status == 401
    finally:
        await check_runner.cleanup()
        await token_runner.cleanup()
