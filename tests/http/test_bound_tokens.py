"""The binding chain through real HTTP (README "Bound tokens"): an upstream that issues opaque
bearer tokens and knows no DPoP; the sidecar records what the client proved, adds `cnf` to
introspection answers, forgets the binding on revocation, and says what it enforces in the
metadata."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
import trustme

from sidecar.adapters.memory import MemoryStore
from sidecar.adapters.redis.store import RedisStore
from sidecar.core.access_binding import ACCESS_BINDING
from sidecar.ports import SystemClock
from tests.conftest import TOKEN_URL_PUBLIC, Sidecar, SidecarFactory
from tests.http.test_certificates import nginx_escaped, s256
from tests.support.dpop import DpopKey
from tests.support.opaque_as import METADATA, OpaqueTokenServer
from tests.support.redis_server import RedisServer
from tests.support.servers import start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = "grant_type=client_credentials&client_id=app&scope=read"
DOORS = {"path": "/introspect", "revocation_path": "/revoke"}
Json = dict[str, Any]


@pytest.fixture
async def opaque_as() -> AsyncIterator[OpaqueTokenServer]:
    server = OpaqueTokenServer()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


async def token(client: aiohttp.ClientSession, sidecar: Sidecar,
                headers: dict[str, str] | None = None) -> tuple[int, Json]:
    async with client.post(sidecar.token_url, data=CC,
                           headers={**FORM, **(headers or {})}) as response:
        return response.status, await response.json()


async def call(client: aiohttp.ClientSession, sidecar: Sidecar, path: str,
               body: str) -> tuple[int, Json]:
    async with client.post(sidecar.url + path, data=body, headers=FORM) as response:
        return response.status, await response.json(content_type=None) if response.content_length \
            else {}


async def test_a_dpop_token_is_introspected_with_its_key(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    key = DpopKey()
    status, issued = await token(client, sidecar, {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    assert issued["token_type"] == "DPoP"  # bound by the sidecar, so the client is told DPoP
    status, answer = await call(client, sidecar, "/introspect", f"token={issued['access_token']}")
    assert status == 200
    # RFC 9449 §6.2: cnf.jkt and token_type DPoP; everything the upstream said stays.
    assert answer["cnf"] == {"jkt": key.jkt}
    assert answer["token_type"] == "DPoP"
    upstream_said = opaque_as.issued[issued["access_token"]]
    assert {k: answer[k] for k in ("active", "client_id", "scope", "exp")} == {
        "active": True, **upstream_said}
    # The request reached the upstream as the resource server sent it.
    assert opaque_as.introspection_bodies[-1] == f"token={issued['access_token']}".encode()


async def test_an_unbound_or_inactive_token_answer_is_unchanged(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    status, issued = await token(client, sidecar)
    assert (status, issued["token_type"]) == (200, "Bearer")
    _, answer = await call(client, sidecar, "/introspect", f"token={issued['access_token']}")
    assert answer == {"active": True, **opaque_as.issued[issued["access_token"]]}
    _, answer = await call(client, sidecar, "/introspect", "token=never-issued")
    assert answer == {"active": False}


async def test_a_certificate_bound_token_shows_its_thumbprint(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    pem = trustme.CA().issue_cert("mtls.example").cert_chain_pems[0].bytes().decode()
    status, issued = await token(client, sidecar, {"X-SSL-Client-Cert": nginx_escaped(pem)})
    assert status == 200
    assert issued["token_type"] == "Bearer"  # RFC 8705 §3: certificate-bound, still Bearer
    _, answer = await call(client, sidecar, "/introspect", f"token={issued['access_token']}")
    assert answer["cnf"] == {"x5t#S256": s256(pem)}  # RFC 8705 §3.2
    assert "token_type" not in answer


async def test_revocation_through_the_sidecar_deletes_the_binding(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    store = MemoryStore(max_entries=1000, prefix="t:", clock=SystemClock())
    sidecar = await sidecar_factory(opaque_as.url, replay_store=store, introspection=DOORS)
    _, issued = await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    access_token = issued["access_token"]
    assert await store.get_binding(ACCESS_BINDING, access_token) is not None
    # The owner, with its credentials (the upstream checks them).
    status, _ = await call(client, sidecar, "/revoke",
                           f"token={access_token}&client_id=app&client_secret=s3cret")
    assert status == 200
    assert opaque_as.revoked == [access_token]
    assert await store.get_binding(ACCESS_BINDING, access_token) is None
    # Were the upstream to answer active again, no cnf would come from a revoked token.
    opaque_as.revoked.clear()
    _, answer = await call(client, sidecar, "/introspect", f"token={access_token}")
    assert "cnf" not in answer


async def test_another_client_cannot_strip_a_binding_by_revoking(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    key = DpopKey()
    _, issued = await token(client, sidecar, {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    access_token = issued["access_token"]
    # RFC 7009 §2.1: the upstream answers 200 and keeps a token another client asks it to
    # revoke; had the sidecar dropped the binding, the live token would introspect as bearer.
    # Another client; nobody; and a bare client_id, which a public client's thief also has
    # (a server that does not revoke access tokens answers 200 all the same, RFC 7009 §2.1).
    for body in (f"token={access_token}&client_id=mallory&client_secret=x",
                 f"token={access_token}", f"token={access_token}&client_id=app"):
        status, _ = await call(client, sidecar, "/revoke", body)
        assert status == 200
    assert opaque_as.revoked == [access_token]  # the upstream revoked it for the bare id
    opaque_as.revoked.clear()  # were it one that keeps access tokens, the binding holds:
    _, answer = await call(client, sidecar, "/introspect", f"token={access_token}")
    assert answer["cnf"] == {"jkt": key.jkt}


async def test_an_upstream_cnf_that_disagrees_wins_and_is_counted(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    _, issued = await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    opaque_as.introspection_extra = {"cnf": {"jkt": "the-upstream-s-own"}, "token_type": "Bearer"}
    _, answer = await call(client, sidecar, "/introspect", f"token={issued['access_token']}")
    assert answer["cnf"] == {"jkt": "the-upstream-s-own"}
    assert answer["token_type"] == "Bearer"


@pytest.mark.parametrize(("body", "code"), [
    ("token=a&token=b", "invalid_request"),  # RFC 6749 §3.2: never twice
    ("token_type_hint=access_token", "invalid_request"),  # RFC 7662 §2.1: token is required
    ("token=%zz", "invalid_request"),
])
async def test_introspection_requests_are_read_strictly(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, body: str, code: str) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    for path in ("/introspect", "/revoke"):
        status, answer = await call(client, sidecar, path, body)
        assert (status, answer["error"]) == (400, code)
    assert opaque_as.introspection_bodies == []
    assert opaque_as.revoked == []
    async with client.get(sidecar.url + "/introspect") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "POST"
        assert (await response.json())["error"] == "invalid_request"


async def test_introspection_fails_closed_when_the_store_is_down(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "bound:")
    sidecar = await sidecar_factory(opaque_as.url, replay_store=store, introspection=DOORS)
    _, issued = await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    redis_server.kill()
    status, answer = await call(client, sidecar, "/introspect", f"token={issued['access_token']}")
    # A bearer-looking answer for a bound token would silently unbind it.
    assert (status, answer["error"]) == (503, "temporarily_unavailable")
    await store.close()


def limited_user(server: RedisServer, prefix: str) -> str:
    """A Redis ACL user that may burn DPoP jtis but not write bindings: a real store whose
    binding writes fail while everything else works."""
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser("limited", enabled=True, passwords=["+limited-pw"],
                      keys=[f"{prefix}dpop:*"], commands=["+set", "+get", "+ping"])
    admin.close()
    return server.url.replace("redis://", "redis://limited:limited-pw@")


async def test_a_binding_that_cannot_be_written_is_not_handed_out(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(limited_user(redis_server, "lim:"), "lim:")
    sidecar = await sidecar_factory(opaque_as.url, replay_store=store)
    status, answer = await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert (status, answer["error"]) == (503, "temporarily_unavailable")
    assert "access_token" not in answer
    await store.close()


async def test_fail_open_never_claims_dpop_for_an_unbound_token(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(limited_user(redis_server, "open:"), "open:")
    sidecar = await sidecar_factory(opaque_as.url, replay_store=store,
                                    store={"failure_mode": "open"})
    status, issued = await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    # The binding was skipped: the token is a bearer token, and the client is told so.
    assert issued["token_type"] == "Bearer"
    await store.close()


async def test_the_binding_lives_as_long_as_the_token(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "ttl:")
    sidecar = await sidecar_factory(opaque_as.url, replay_store=store,
                                    bindings={"default_ttl_seconds": 120})
    raw = redis.Redis.from_url(redis_server.url)
    await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    (key,) = raw.keys("ttl:access:*")
    assert 3_590_000 < raw.pttl(key) <= 3_600_000  # expires_in of the answer
    value = raw.get(key)
    assert isinstance(value, bytes)
    stored = json.loads(value)
    assert set(stored) == {"jkt", "client_id", "scope", "exp"}
    raw.delete(key)
    opaque_as.expires_in = None
    await token(client, sidecar, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    (key,) = raw.keys("ttl:access:*")
    assert 110_000 < raw.pttl(key) <= 120_000  # bindings.default_ttl_seconds
    raw.close()
    await store.close()


# --- metadata (RFC 8414) ---------------------------------------------------------------------

async def test_metadata_says_what_the_sidecar_enforces(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url)
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        async with client.get(sidecar.url + path) as response:
            assert response.status == 200
            body = await response.read()
            assert response.content_length == len(body)
            assert response.headers["ETag"] not in ('"upstream-v1"', "")
            assert response.headers["Cache-Control"] == "max-age=60"
        document = json.loads(body)
        assert document["dpop_signing_alg_values_supported"] == list(
            sidecar.settings.dpop.algorithms)
        assert document["tls_client_certificate_bound_access_tokens"] is True
        # Every field of the original, unchanged where the sidecar is not the authority.
        for name, value in METADATA.items():
            if name != "dpop_signing_alg_values_supported":
                assert document[name] == value


async def test_metadata_passes_unchanged_when_augment_is_off(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, metadata={"augment": False})
    async with client.get(sidecar.url + "/.well-known/oauth-authorization-server") as response:
        assert response.headers["ETag"] == '"upstream-v1"'
        assert await response.json() == METADATA


async def test_metadata_lists_the_registry_s_methods(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, tmp_path: Path) -> None:
    (tmp_path / "web.secret").write_text("a-client-secret-that-is-long-enough-0123456789\n")
    registry = tmp_path / "clients.toml"
    registry.write_text('[[clients]]\nclient_id = "web"\n'
                        'token_endpoint_auth_method = "client_secret_basic"\n'
                        'client_secret_file = "web.secret"\n'
                        '[[clients]]\nclient_id = "spa"\ntoken_endpoint_auth_method = "none"\n')
    sidecar = await sidecar_factory(opaque_as.url, clients={
        "registry_file": str(registry), "assertion_algorithms": ["ES256", "PS256"]})
    async with client.get(sidecar.url + "/.well-known/oauth-authorization-server") as response:
        document = await response.json()
    # The sidecar authenticates clients: its methods, not the upstream's.
    assert document["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "none"]
    assert document["token_endpoint_auth_signing_alg_values_supported"] == ["ES256", "PS256"]


@pytest.mark.parametrize("path", ["/INTROSPECT", "/introspect/", "/Revoke."])
async def test_spellings_of_introspection_and_revocation_are_those_endpoints(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer, path: str) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    # Read as the endpoint (a duplicated token is refused), never passed through unread.
    status, answer = await call(client, sidecar, path, "token=a&token=b")
    assert (status, answer["error"]) == (400, "invalid_request")
    assert opaque_as.introspection_bodies == [] and opaque_as.revoked == []


async def test_a_token_in_the_introspection_query_is_refused(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        opaque_as: OpaqueTokenServer) -> None:
    sidecar = await sidecar_factory(opaque_as.url, introspection=DOORS)
    # An upstream that reads the query first would introspect the query's token.
    status, answer = await call(client, sidecar, "/introspect?token=other", "token=mine")
    assert (status, answer["error"]) == (400, "invalid_request")
    assert opaque_as.introspection_bodies == []
