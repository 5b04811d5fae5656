"""DPoP at the token endpoint through real HTTP (RFC 9449): binding, replay, nonces, refresh
token binding, token_type, PAR, store failures."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from multidict import CIMultiDictProxy

from sidecar.adapters.redis.store import RedisStore
from sidecar.ports import store_key
from tests.conftest import TOKEN_URL_PUBLIC, Sidecar, SidecarFactory
from tests.support.dpop import DpopKey, Ed25519DpopKey
from tests.support.redis_server import RedisServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = "grant_type=client_credentials&client_id=app"
NONCE_SECRET = "a-nonce-secret-that-is-long-enough-0123456789"


async def post(client: aiohttp.ClientSession, sidecar: Sidecar, body: str,
               headers: dict[str, str] | None = None,
               path: str | None = None) -> tuple[int, CIMultiDictProxy[str], dict[str, Any]]:
    url = sidecar.url + (path or sidecar.settings.server.token_path)
    async with client.post(url, data=body, headers={**FORM, **(headers or {})}) as response:
        answer: dict[str, Any] = await response.json()
        return response.status, response.headers, answer


async def test_accepted_proof_binds_the_token_to_the_key(client: aiohttp.ClientSession,
                                                         sidecar: Sidecar) -> None:
    key = DpopKey()
    status, headers, body = await post(client, sidecar, CC,
                                       {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    assert sidecar.upstream.last.context["X-Token-DPoP-JKT"] == key.jkt
    # The upstream said Bearer; by default the answer is rewritten (dpop.upstream_token_type).
    assert body["token_type"] == "DPoP"
    assert headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
async def test_ed25519_proofs_as_oauth4webapi_signs_them_pass_with_the_defaults(
        client: aiohttp.ClientSession, sidecar: Sidecar, alg: str) -> None:
    """RFC 9864's "Ed25519" (what oauth4webapi sends) and RFC 8037's "EdDSA", one OKP key."""
    key = Ed25519DpopKey(alg=alg)
    status, _, body = await post(client, sidecar, CC, {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200, body
    assert sidecar.upstream.last.context["X-Token-DPoP-JKT"] == key.jkt
    assert body["token_type"] == "DPoP"


async def test_header_name_is_case_insensitive(client: aiohttp.ClientSession,
                                               sidecar: Sidecar) -> None:
    key = DpopKey()
    status, _, _ = await post(client, sidecar, CC, {"dpop": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    assert sidecar.upstream.last.context["X-Token-DPoP-JKT"] == key.jkt


async def test_a_replayed_proof_is_refused(client: aiohttp.ClientSession,
                                           sidecar: Sidecar) -> None:
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    assert (await post(client, sidecar, CC, {"DPoP": proof}))[0] == 200
    status, _, body = await post(client, sidecar, CC, {"DPoP": proof})
    assert (status, body["error"]) == (400, "invalid_dpop_proof")
    assert len(sidecar.upstream.received) == 1


async def test_a_refused_request_does_not_burn_the_jti(client: aiohttp.ClientSession,
                                                       sidecar: Sidecar) -> None:
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    status, _, body = await post(client, sidecar, "grant_type=magic&client_id=app",
                                 {"DPoP": proof})
    assert (status, body["error"]) == (400, "unsupported_grant_type")
    assert (await post(client, sidecar, CC, {"DPoP": proof}))[0] == 200


async def test_concurrent_copies_of_one_proof_pass_once(client: aiohttp.ClientSession,
                                                        sidecar: Sidecar) -> None:
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    results = await asyncio.gather(*(post(client, sidecar, CC, {"DPoP": proof})
                                     for _ in range(50)))
    statuses = sorted(r[0] for r in results)
    assert statuses.count(200) == 1
    assert statuses.count(400) == 49
    assert len(sidecar.upstream.received) == 1


async def test_proof_signed_for_the_local_address_is_refused(
        client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    # htu is the configured public URL, never what the request's Host header says.
    status, _, body = await post(client, sidecar, CC,
                                 {"DPoP": DpopKey().proof(sidecar.token_url)})
    assert (status, body["error"]) == (400, "invalid_dpop_proof")


async def test_two_proofs_are_refused(client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    key = DpopKey()
    async with client.post(sidecar.token_url, data=CC, headers=[
            ("Content-Type", FORM["Content-Type"]), ("DPoP", key.proof(TOKEN_URL_PUBLIC)),
            ("DPoP", key.proof(TOKEN_URL_PUBLIC))]) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_dpop_proof"


async def test_required_dpop_without_proof(client: aiohttp.ClientSession,
                                           sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(dpop={"required": True})
    status, _, body = await post(client, sidecar, CC)
    assert (status, body["error"]) == (400, "invalid_dpop_proof")
    assert body["error_description"] == "A DPoP proof is required."
    assert sidecar.upstream.received == []


@pytest.fixture
def nonce_secret_file(tmp_path: Path) -> str:
    path = tmp_path / "nonce-secret"
    path.write_text(f"# DPoP nonce secrets: the first signs\n{NONCE_SECRET}\n")
    return str(path)


async def test_nonce_challenge_and_retry(client: aiohttp.ClientSession,
                                         sidecar_factory: SidecarFactory,
                                         nonce_secret_file: str) -> None:
    sidecar = await sidecar_factory(dpop={"nonce_required": True,
                                          "nonce_secret_file": nonce_secret_file})
    key = DpopKey()
    async with client.post(sidecar.token_url, data=CC,
                           headers={**FORM, "DPoP": key.proof(TOKEN_URL_PUBLIC)}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "use_dpop_nonce"
        assert len(response.headers.getall("DPoP-Nonce")) == 1
        assert response.headers["Cache-Control"] == "no-store"
        nonce = response.headers["DPoP-Nonce"]
    assert sidecar.upstream.received == []
    async with client.post(sidecar.token_url, data=CC, headers={
            **FORM, "DPoP": key.proof(TOKEN_URL_PUBLIC, nonce=nonce)}) as response:
        assert response.status == 200
        assert len(response.headers.getall("DPoP-Nonce")) == 1  # a fresh one for next time
    assert sidecar.upstream.last.context["X-Token-DPoP-JKT"] == key.jkt


async def test_nonces_are_shared_by_replicas(client: aiohttp.ClientSession,
                                             sidecar_factory: SidecarFactory,
                                             nonce_secret_file: str) -> None:
    config = {"nonce_required": True, "nonce_secret_file": nonce_secret_file}
    first = await sidecar_factory(dpop=config)
    second = await sidecar_factory(dpop=config)
    key = DpopKey()
    _, headers, _ = await post(client, first, CC, {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    nonce = headers["DPoP-Nonce"]
    status, _, _ = await post(client, second, CC,
                              {"DPoP": key.proof(TOKEN_URL_PUBLIC, nonce=nonce)})
    assert status == 200


async def test_a_forged_nonce_is_refused(client: aiohttp.ClientSession,
                                         sidecar_factory: SidecarFactory,
                                         nonce_secret_file: str) -> None:
    sidecar = await sidecar_factory(dpop={"nonce_required": True,
                                          "nonce_secret_file": nonce_secret_file})
    status, headers, body = await post(client, sidecar, CC, {
        "DPoP": DpopKey().proof(TOKEN_URL_PUBLIC, nonce="made-up-nonce")})
    assert (status, body["error"]) == (400, "use_dpop_nonce")
    assert headers["DPoP-Nonce"] != "made-up-nonce"


@pytest.mark.parametrize(("mode", "status", "token_type"), [
    ("pass", 200, "Bearer"), ("rewrite", 200, "DPoP"), ("require", 502, None)])
async def test_upstream_token_type(client: aiohttp.ClientSession,
                                   sidecar_factory: SidecarFactory, mode: str, status: int,
                                   token_type: str | None) -> None:
    sidecar = await sidecar_factory(dpop={"upstream_token_type": mode})
    got, _, body = await post(client, sidecar, CC, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert got == status
    if token_type:
        assert body["token_type"] == token_type
    else:
        assert body["error"] == "server_error"
        assert "access_token" not in body


async def test_dpop_upstream_answer_is_left_alone(client: aiohttp.ClientSession,
                                                  sidecar: Sidecar) -> None:
    sidecar.upstream.token_body = {"access_token": "x", "token_type": "DPoP", "extra": 1}
    _, _, body = await post(client, sidecar, CC, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert body == {"access_token": "x", "token_type": "DPoP", "extra": 1}


async def test_cors_answers_expose_the_dpop_headers(client: aiohttp.ClientSession,
                                                    sidecar: Sidecar) -> None:
    sidecar.upstream.token_headers = {"Access-Control-Allow-Origin": "https://app.example",
                                      "Access-Control-Expose-Headers": "X-Custom"}
    _, headers, _ = await post(client, sidecar, CC, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    exposed = {h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")}
    assert exposed == {"X-Custom", "DPoP-Nonce", "WWW-Authenticate",
                       "OAuth-Client-Attestation-Challenge"}


# --- refresh-token binding (RFC 9449 §5) -------------------------------------------------

def refresh(token: str, client_id: str = "spa") -> str:
    return f"grant_type=refresh_token&refresh_token={token}&client_id={client_id}"


async def test_public_client_refresh_tokens_are_bound_to_the_key(
        client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    key, other = DpopKey(), DpopKey()
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "DPoP",
                                   "refresh_token": "rt-1"}
    status, _, _ = await post(client, sidecar, "grant_type=authorization_code&code=c"
                                               "&client_id=spa",
                              {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    # Another key, or none, cannot use the bound refresh token; each is told which it was.
    for headers, description in (
            ({"DPoP": other.proof(TOKEN_URL_PUBLIC)},
             "The refresh token is bound to another DPoP key."),
            ({}, "The refresh token is bound to a DPoP key: a DPoP proof is required.")):
        status, _, body = await post(client, sidecar, refresh("rt-1"), headers)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert body["error_description"] == description
    assert len(sidecar.upstream.received) == 1
    # The same key can; the rotated token inherits the binding.
    sidecar.upstream.token_body = {"access_token": "at2", "token_type": "DPoP",
                                   "refresh_token": "rt-2"}
    status, _, _ = await post(client, sidecar, refresh("rt-1"),
                              {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    status, _, body = await post(client, sidecar, refresh("rt-2"),
                                 {"DPoP": other.proof(TOKEN_URL_PUBLIC)})
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await post(client, sidecar, refresh("rt-2"),
                       {"DPoP": key.proof(TOKEN_URL_PUBLIC)}))[0] == 200


async def test_a_bound_refresh_token_cannot_be_exchanged_instead(
        client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    """RFC 8693 lets a refresh token be a subject or actor token: the binding holds there too."""
    key = DpopKey()
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "DPoP",
                                   "refresh_token": "rt-x"}
    assert (await post(client, sidecar, "grant_type=authorization_code&code=c&client_id=spa",
                       {"DPoP": key.proof(TOKEN_URL_PUBLIC)}))[0] == 200
    rt_type = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token"
    at_type = "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
    exchange = ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
                "&client_id=spa")
    for body in (f"{exchange}&subject_token=rt-x&subject_token_type={rt_type}",
                 f"{exchange}&subject_token=at&subject_token_type={at_type}"
                 f"&actor_token=rt-x&actor_token_type={rt_type}"):
        for headers in ({"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)}, {}):
            status, _, error = await post(client, sidecar, body, headers)
            assert (status, error["error"]) == (400, "invalid_grant")
        assert (await post(client, sidecar, body, {"DPoP": key.proof(TOKEN_URL_PUBLIC)}))[0] \
            == 200
    # Labelled as another type, it is still the bound refresh token.
    status, _, error = await post(client, sidecar,
                                  f"{exchange}&subject_token=rt-x&subject_token_type={at_type}")
    assert (status, error["error"]) == (400, "invalid_grant")


async def test_confidential_client_refresh_tokens_are_not_bound(
        client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "DPoP",
                                   "refresh_token": "rt-conf"}
    body = "grant_type=authorization_code&code=c&client_id=web&client_secret=s"
    assert (await post(client, sidecar, body, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)}))[0] \
        == 200
    status, _, _ = await post(client, sidecar, refresh("rt-conf", "web") + "&client_secret=s",
                              {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert status == 200


async def test_binding_ttl_follows_refresh_token_expires_in(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "ttl-test:")
    sidecar = await sidecar_factory(replay_store=store)
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "DPoP",
                                   "refresh_token": "rt-ttl", "refresh_token_expires_in": 500}
    await post(client, sidecar, "grant_type=authorization_code&code=c&client_id=spa",
               {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    raw = redis.Redis.from_url(redis_server.url)
    keys = list(raw.keys("ttl-test:refresh:*"))
    assert len(keys) == 1
    assert 490_000 < raw.pttl(keys[0]) <= 500_000
    assert b"rt-ttl" not in keys[0]
    raw.close()
    await store.close()


# --- store failures (store.failure_mode) -------------------------------------------------

async def test_store_down_fails_closed(client: aiohttp.ClientSession,
                                       sidecar_factory: SidecarFactory,
                                       redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "closed:")
    sidecar = await sidecar_factory(replay_store=store)
    redis_server.kill()
    status, headers, body = await post(client, sidecar, CC,
                                       {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert (status, body["error"]) == (503, "temporarily_unavailable")
    assert headers["Retry-After"] == "1"
    assert sidecar.upstream.received == []
    # Requests that need no store still pass.
    assert (await post(client, sidecar, CC))[0] == 200
    await store.close()


async def test_store_down_fails_open_when_configured(client: aiohttp.ClientSession,
                                                     sidecar_factory: SidecarFactory,
                                                     redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "open:")
    sidecar = await sidecar_factory(replay_store=store, store={"failure_mode": "open"})
    redis_server.kill()
    status, _, _ = await post(client, sidecar, CC, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert status == 200
    assert sidecar.upstream.last.context["X-Token-Replay-Check"] == "skipped"
    await store.close()


@pytest.mark.parametrize("failure_mode", ["closed", "open"])
async def test_a_failing_store_command_fails_only_its_own_request(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        redis_server_session: RedisServer, failure_mode: str) -> None:
    """Store commands of requests that arrive together share a pipeline; an error reply to
    one (here WRONGTYPE: the refresh token's binding key holds a list) is that request's
    store failure, handled by store.failure_mode, and no other request's."""
    prefix = f"pipeline-{failure_mode}:"
    sidecar = await sidecar_factory(store={"url": redis_server_session.url,
                                           "key_prefix": prefix, "failure_mode": failure_mode})
    raw = redis.Redis.from_url(redis_server_session.url)
    raw.delete(store_key(prefix, "refresh", "poisoned-rt"))
    raw.lpush(store_key(prefix, "refresh", "poisoned-rt"), "not a binding")
    raw.close()
    key = DpopKey()
    refresh = "grant_type=refresh_token&refresh_token=poisoned-rt&client_id=app"
    results = await asyncio.gather(
        post(client, sidecar, refresh, {"DPoP": key.proof(TOKEN_URL_PUBLIC)}),
        *(post(client, sidecar, CC, {"DPoP": key.proof(TOKEN_URL_PUBLIC)}) for _ in range(40)))
    assert [status for status, _, _ in results[1:]] == [200] * 40
    refreshes = [r for r in sidecar.upstream.received if b"refresh_token" in r.body]
    if failure_mode == "closed":
        assert (results[0][0], results[0][2]["error"]) == (503, "temporarily_unavailable")
        assert refreshes == []
    else:
        assert results[0][0] == 200
        assert [r.context.get("X-Token-Replay-Check") for r in refreshes] == ["skipped"]
    assert len(sidecar.upstream.received) == 40 + (failure_mode == "open")
    assert not any("X-Token-Replay-Check" in r.context
                   for r in sidecar.upstream.received if r not in refreshes)


async def test_replicas_sharing_redis_accept_a_proof_once(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        redis_server: RedisServer) -> None:
    stores = [RedisStore.from_url(redis_server.url, "shared:") for _ in range(2)]
    replicas = [await sidecar_factory(replay_store=s) for s in stores]
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    results = await asyncio.gather(*(post(client, replicas[i % 2], CC, {"DPoP": proof})
                                     for i in range(40)))
    assert sorted(r[0] for r in results).count(200) == 1
    for store in stores:
        await store.close()


# --- PAR (RFC 9449 §10.1) ------------------------------------------------------------------

PAR_PUBLIC = "https://as.example.com/par"


async def test_par_proof_and_dpop_jkt(client: aiohttp.ClientSession,
                                      sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(dpop={"par_path": "/par"})
    key = DpopKey()
    body = "client_id=spa&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
    status, _, _ = await post(client, sidecar, body + f"&dpop_jkt={key.jkt}",
                              {"DPoP": key.proof(PAR_PUBLIC)}, path="/par")
    assert status == 200
    assert sidecar.upstream.last.path == "/par"
    assert sidecar.upstream.last.context == {"X-Token-DPoP-JKT": key.jkt}
    status, _, answer = await post(client, sidecar, body + f"&dpop_jkt={DpopKey().jkt}",
                                   {"DPoP": key.proof(PAR_PUBLIC)}, path="/par")
    assert (status, answer["error"]) == (400, "invalid_request")
    # A proof made for the token endpoint is not a PAR proof.
    status, _, answer = await post(client, sidecar, body, {"DPoP": key.proof(TOKEN_URL_PUBLIC)},
                                   path="/par")
    assert (status, answer["error"]) == (400, "invalid_dpop_proof")
