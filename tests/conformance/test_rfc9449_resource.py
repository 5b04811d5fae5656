"""RFC 9449 at a protected resource (§7, §4.3 with step 12, §9), RFC 6750 §3 and RFC 8705 §3:
table-driven, through the inline door over real HTTP, the bindings and replay keys in a real
Redis. Each refusal the resource side makes, and the proofs it must accept (the OIDF FAPI 2.0
DPoP negative tests call the protected resource with most of these).

Every case asserts what a client relies on: the status, the challenge's scheme and error
code, `algs` in a DPoP challenge, a `DPoP-Nonce` where due, the token never in a header of
the answer; an accepted call reached the API as Bearer without the proof."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict

from sidecar.adapters.redis.store import RedisStore
from tests.conftest import TOKEN_URL_PUBLIC, SidecarFactory
from tests.http.test_certificates import nginx_escaped, s256
from tests.support.dpop import DpopKey, Ed25519DpopKey
from tests.support.redis_server import RedisServer
from tests.support.resource import (
    API_ORIGIN,
    API_PATH,
    API_URL,
    Answer,
    api_proof,
    ath,
    b64url,
    bind,
    claims_for,
    resource_settings,
    sign,
)
from tests.support.servers import RecordingUpstream

NONCE_SECRET = "resource-nonce-secret-0123456789abcdef"


@dataclass
class Ctx:
    http: aiohttp.ClientSession
    url: str
    store: RedisStore
    key: DpopKey = field(default_factory=DpopKey)
    token: str = field(default_factory=lambda: "at-" + uuid.uuid4().hex)

    async def call(self, headers: list[tuple[str, str]], method: str = "GET",
                   path: str = API_PATH) -> Answer:
        async with self.http.request(method, self.url + path,
                                     headers=CIMultiDict(headers)) as response:
            await response.read()
            return Answer(response.status, CIMultiDict(response.headers))

    async def dpop(self, proof: str | None = None, *, method: str = "GET",
                   path: str = API_PATH, scheme: str = "DPoP") -> Answer:
        proof = api_proof(self.key, self.token) if proof is None else proof
        return await self.call([("Authorization", f"{scheme} {self.token}"), ("DPoP", proof)],
                               method, path)

    def proof(self, **claims: Any) -> str:
        return api_proof(self.key, self.token, **claims)


Run = Callable[[Ctx], Awaitable[Answer]]


@dataclass(frozen=True)
class Case:
    name: str
    run: Run
    status: int
    error: str | None = None  # the challenge's error code; None: no error attribute
    scheme: str = "DPoP"  # the scheme of the challenge that names the error
    bound: str = "jkt"  # how the token is recorded: jkt, x5t, none
    reached_before: int = 0  # calls of the case that reached the API before the last one
    resource: dict[str, Any] = field(default_factory=dict)


def _header(key: DpopKey, **changes: Any) -> dict[str, Any]:
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk, **changes}
    return {k: v for k, v in header.items() if v is not None}


def _private_jwk(key: DpopKey) -> dict[str, Any]:
    numbers = key.private.private_numbers()
    return {**key.public_jwk, "d": b64url(numbers.private_value.to_bytes(32, "big"))}


async def _nonce_retry(ctx: Ctx) -> Answer:
    first = await ctx.dpop()
    assert first.status == 401
    assert 'error="use_dpop_nonce"' in first.challenge("DPoP")
    nonce = first.headers["DPoP-Nonce"]
    return await ctx.dpop(ctx.proof(nonce=nonce))


async def _replayed(ctx: Ctx) -> Answer:
    proof = ctx.proof()
    assert (await ctx.dpop(proof)).status == 200
    return await ctx.dpop(proof)


async def _long_token(ctx: Ctx) -> Answer:
    ctx.token = "at-" + "x" * 4000
    await bind(ctx.store, ctx.token, jkt=ctx.key.jkt)
    return await ctx.dpop()


async def _other_key(ctx: Ctx) -> Answer:
    return await ctx.dpop(api_proof(DpopKey(), ctx.token))


async def _ed25519(ctx: Ctx) -> Answer:
    key = Ed25519DpopKey()
    await bind(ctx.store, ctx.token, jkt=key.jkt)
    # Ed25519DpopKey signs without ath: add it the way a client does.
    header = {"alg": "Ed25519", "typ": "dpop+jwt", "jwk": key.public_jwk}
    signing_input = ".".join(b64url(json.dumps(p).encode())
                             for p in (header, claims_for(ctx.token)))
    proof = f"{signing_input}.{b64url(key.private.sign(signing_input.encode()))}"
    return await ctx.dpop(proof)


async def _hs256(ctx: Ctx) -> Answer:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}
    signing_input = ".".join(b64url(json.dumps(p).encode())
                             for p in (header, claims_for(ctx.token)))
    mac = hmac.new(b"secret", signing_input.encode(), hashlib.sha256).digest()
    return await ctx.dpop(f"{signing_input}.{b64url(mac)}")


async def _alg_none(ctx: Ctx) -> Answer:
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": ctx.key.public_jwk}
    unsigned = ".".join(b64url(json.dumps(p).encode()) for p in (header, claims_for(ctx.token)))
    return await ctx.dpop(unsigned + ".")


async def _bad_signature(ctx: Ctx) -> Answer:
    proof = ctx.proof()
    head, payload, signature = proof.split(".")
    other = api_proof(ctx.key, ctx.token).split(".")[2]
    return await ctx.dpop(f"{head}.{payload}.{other if other != signature else signature[::-1]}")


def _with_cert(pem: str) -> Run:
    async def run(ctx: Ctx) -> Answer:
        return await ctx.call([("Authorization", f"Bearer {ctx.token}"),
                               ("X-SSL-Client-Cert", nginx_escaped(pem))])
    return run


_CA = trustme.CA()
CLIENT_PEM = _CA.issue_cert("client.example").cert_chain_pems[0].bytes().decode()
OTHER_PEM = _CA.issue_cert("other.example").cert_chain_pems[0].bytes().decode()
NONCE = {"nonce_required": True}

CASES = [
    # --- must accept -------------------------------------------------------------------
    Case("accepts a valid proof", lambda c: c.dpop(), 200),
    Case("accepts htu with query and fragment (§4.3 step 9)",
         lambda c: c.dpop(c.proof(htu=API_URL + "?a=1#frag")), 200),
    Case("accepts an upper-case host in htu", lambda c: c.dpop(
        c.proof(htu="https://API.Example.COM" + API_PATH)), 200),
    Case("accepts the default port in htu", lambda c: c.dpop(
        c.proof(htu="https://api.example.com:443" + API_PATH)), 200),
    Case("accepts an upper-case scheme in htu", lambda c: c.dpop(
        c.proof(htu="HTTPS://api.example.com" + API_PATH)), 200),
    Case("accepts a request with a query, htu without it", lambda c: c.dpop(
        path=API_PATH + "?page=2"), 200),
    Case("accepts percent-encoded unreserved characters in htu", lambda c: c.dpop(
        c.proof(htu=API_ORIGIN + "/api/%74hings")), 200),
    Case("accepts iat 50 s in the past", lambda c: c.dpop(
        c.proof(iat=int(time.time()) - 50)), 200),
    Case("accepts iat 5 s in the future", lambda c: c.dpop(
        c.proof(iat=int(time.time()) + 5)), 200),
    Case("accepts the ath of a long token", _long_token, 200),
    Case("accepts the scheme in lower case (RFC 9110 §11.1)", lambda c: c.dpop(
        scheme="dpop"), 200),
    Case("accepts an Ed25519 proof", _ed25519, 200),
    Case("accepts a POST proof for a POST", lambda c: c.dpop(
        c.proof(htm="POST"), method="POST"), 200),
    Case("accepts the retry with the nonce it was given (§9)", _nonce_retry, 200,
         resource=NONCE),
    Case("accepts an unbound token as Bearer when resource.bearer = allow",
         lambda c: c.call([("Authorization", f"Bearer {c.token}")]), 200, bound="none"),
    Case("accepts a certificate-bound token with its certificate (RFC 8705 §3)",
         _with_cert(CLIENT_PEM), 200, bound="x5t"),
    # --- refusals: no or bad credentials -------------------------------------------------
    Case("no Authorization: a challenge without error (RFC 6750 §3.1)",
         lambda c: c.call([]), 401, None),
    Case("two Authorization headers", lambda c: c.call(
        [("Authorization", f"DPoP {c.token}"), ("Authorization", f"DPoP {c.token}"),
         ("DPoP", c.proof())]), 400, "invalid_request", scheme="DPoP"),
    Case("a malformed DPoP credential", lambda c: c.call(
        [("Authorization", "DPoP not a token"), ("DPoP", c.proof())]), 400, "invalid_request"),
    # --- refusals: the proof (§4.3) ------------------------------------------------------
    Case("DPoP scheme without a proof", lambda c: c.call(
        [("Authorization", f"DPoP {c.token}")]), 401, "invalid_dpop_proof"),
    Case("two DPoP headers (step 1)", lambda c: c.call(
        [("Authorization", f"DPoP {c.token}"), ("DPoP", c.proof()), ("DPoP", c.proof())]),
         401, "invalid_dpop_proof"),
    Case("a proof that is no JWS (step 2)", lambda c: c.dpop("not-a-jwt"), 401,
         "invalid_dpop_proof"),
    Case("typ missing (step 4)", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, typ=None))), 401, "invalid_dpop_proof"),
    Case("typ JWT (step 4)", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, typ="JWT"))), 401, "invalid_dpop_proof"),
    Case("alg none (step 5)", _alg_none, 401, "invalid_dpop_proof"),
    Case("alg HS256 (step 5)", _hs256, 401, "invalid_dpop_proof"),
    Case("alg not matching the key (step 5)", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, alg="ES384"))), 401, "invalid_dpop_proof"),
    Case("crit header", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, crit=["x"]))), 401, "invalid_dpop_proof"),
    Case("no jwk (step 7)", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, jwk=None))), 401, "invalid_dpop_proof"),
    Case("a private jwk (step 7)", lambda c: c.dpop(sign(
        c.key, claims_for(c.token), _header(c.key, jwk=_private_jwk(c.key)))), 401,
         "invalid_dpop_proof"),
    Case("a bad signature (step 6)", _bad_signature, 401, "invalid_dpop_proof"),
    Case("jti missing (step 3)", lambda c: c.dpop(c.proof(jti=None)), 401,
         "invalid_dpop_proof"),
    Case("htm missing (step 3)", lambda c: c.dpop(c.proof(htm=None)), 401,
         "invalid_dpop_proof"),
    Case("htu missing (step 3)", lambda c: c.dpop(c.proof(htu=None)), 401,
         "invalid_dpop_proof"),
    Case("iat missing (step 3)", lambda c: c.dpop(c.proof(iat=None)), 401,
         "invalid_dpop_proof"),
    Case("htm PUT for a GET (step 8)", lambda c: c.dpop(c.proof(htm="PUT")), 401,
         "invalid_dpop_proof"),
    Case("htm in lower case (step 8, RFC 9110 §9.1)", lambda c: c.dpop(c.proof(htm="get")),
         401, "invalid_dpop_proof"),
    Case("htu of another host (step 9)", lambda c: c.dpop(
        c.proof(htu="https://evil.example.com" + API_PATH)), 401, "invalid_dpop_proof"),
    Case("htu of another path (step 9)", lambda c: c.dpop(
        c.proof(htu=API_ORIGIN + "/api/other")), 401, "invalid_dpop_proof"),
    Case("htu with http instead of https (step 9)", lambda c: c.dpop(
        c.proof(htu="http://api.example.com" + API_PATH)), 401, "invalid_dpop_proof"),
    Case("htu of the token endpoint (step 9)", lambda c: c.dpop(
        c.proof(htu=TOKEN_URL_PUBLIC)), 401, "invalid_dpop_proof"),
    Case("iat 120 s old (step 11)", lambda c: c.dpop(c.proof(iat=int(time.time()) - 120)),
         401, "invalid_dpop_proof"),
    Case("iat 60 s in the future (step 11)", lambda c: c.dpop(
        c.proof(iat=int(time.time()) + 60)), 401, "invalid_dpop_proof"),
    Case("exp in the past (RFC 7519 §4.1.4)", lambda c: c.dpop(
        c.proof(exp=int(time.time()) - 60)), 401, "invalid_dpop_proof"),
    Case("nbf in the future (RFC 7519 §4.1.5)", lambda c: c.dpop(
        c.proof(nbf=int(time.time()) + 60)), 401, "invalid_dpop_proof"),
    Case("ath missing (step 12)", lambda c: c.dpop(c.proof(ath=None)), 401,
         "invalid_dpop_proof"),
    Case("ath of another token (step 12)", lambda c: c.dpop(c.proof(ath=ath("other"))), 401,
         "invalid_dpop_proof"),
    Case("ath not a string (step 12)", lambda c: c.dpop(c.proof(ath=12)), 401,
         "invalid_dpop_proof"),
    Case("ath in padded base64 (step 12)", lambda c: c.dpop(c.proof(ath=ath(c.token) + "=")),
         401, "invalid_dpop_proof"),
    Case("a replayed proof (§11.1)", _replayed, 401, "invalid_dpop_proof", reached_before=1),
    Case("no nonce when one is required (§9)", lambda c: c.dpop(), 401, "use_dpop_nonce",
         resource=NONCE),
    Case("a nonce the server never issued (§9)", lambda c: c.dpop(
        c.proof(nonce="A" * 43)), 401, "use_dpop_nonce", resource=NONCE),
    # --- refusals: the binding (§7.1, RFC 8705 §3) ---------------------------------------
    Case("a proof with another key than cnf.jkt (§7.1)", _other_key, 401,
         "invalid_dpop_proof"),
    Case("a DPoP-bound token as Bearer (§7.1)", lambda c: c.call(
        [("Authorization", f"Bearer {c.token}")]), 401, "invalid_token", scheme="Bearer"),
    Case("a DPoP-bound token as Bearer with a proof beside it (§7.1)", lambda c: c.dpop(
        scheme="Bearer"), 401, "invalid_token", scheme="Bearer"),
    Case("an unknown token with DPoP", lambda c: c.dpop(), 401, "invalid_token",
         bound="none"),
    Case("a certificate-bound token with DPoP", lambda c: c.dpop(), 401, "invalid_token",
         bound="x5t"),
    Case("an expired binding", lambda c: c.dpop(), 401, "invalid_token", bound="expired"),
    Case("a certificate-bound token without a certificate", lambda c: c.call(
        [("Authorization", f"Bearer {c.token}")]), 401, "invalid_token", scheme="Bearer",
         bound="x5t"),
    Case("a certificate-bound token with another certificate", _with_cert(OTHER_PEM), 401,
         "invalid_token", scheme="Bearer", bound="x5t"),
    Case("an unbound token as Bearer when resource.bearer = deny", lambda c: c.call(
        [("Authorization", f"Bearer {c.token}")]), 401, "invalid_token", scheme="Bearer",
         bound="none", resource={"bearer": "deny"}),
    Case("a scope the token lacks (RFC 6750 §3.1)", lambda c: c.dpop(), 403,
         "insufficient_scope", resource={"required_scopes": ["admin"]}),
]


async def bind_as_the_case_says(case: Case, ctx: Ctx) -> None:
    """Record the case's token as the token side would have (or not at all)."""
    if case.bound == "jkt":
        await bind(ctx.store, ctx.token, jkt=ctx.key.jkt)
    elif case.bound == "x5t":
        await bind(ctx.store, ctx.token, x5t_s256=s256(CLIENT_PEM))
    elif case.bound == "expired":
        await bind(ctx.store, ctx.token, jkt=ctx.key.jkt, exp=int(time.time()) - 1)


def assert_denial(case: Case, answer: Answer) -> None:
    """The challenge names the case's error in its scheme; the DPoP one says `algs`
    (RFC 9449 §7.1); a nonce error comes with a fresh nonce (§9)."""
    challenge = answer.challenge(case.scheme)
    if case.error is None:
        assert "error=" not in challenge
    else:
        assert f'error="{case.error}"' in challenge
    dpop = answer.challenge("DPoP")
    assert 'algs="' in dpop and "ES256" in dpop
    if case.error == "use_dpop_nonce":
        assert len(answer.headers["DPoP-Nonce"]) == 43


@pytest.fixture
async def redis_store(redis_server_session: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_session.url, f"rfc9449-rs-{uuid.uuid4().hex}:")
    yield store
    await store.close()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_resource_side_proof_rules(
        case: Case, *, sidecar_factory: SidecarFactory, upstream: RecordingUpstream,
        redis_store: RedisStore, client: aiohttp.ClientSession, tmp_path: Path) -> None:
    secret = tmp_path / "nonce.secret"
    secret.write_text(NONCE_SECRET + "\n", encoding="utf-8")
    resource = resource_settings(upstream.url, nonce_secret_file=str(secret), **case.resource)
    sidecar = await sidecar_factory(replay_store=redis_store, resource=resource)
    ctx = Ctx(client, sidecar.url, redis_store)
    await bind_as_the_case_says(case, ctx)
    answer = await case.run(ctx)
    assert answer.status == case.status, answer.headers.getall("WWW-Authenticate", ())
    for value in answer.headers.values():
        assert ctx.token not in value  # never the token in a header of the answer
    if case.status == 200:
        reached = upstream.last
        assert reached.headers["Authorization"] == f"Bearer {ctx.token}"
        assert "DPoP" not in reached.headers
        return
    assert_denial(case, answer)
    assert len(upstream.received) == case.reached_before  # nothing refused reached the API


def test_the_table_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


def test_ec_keys_are_p256() -> None:  # the manual signer above assumes 32-byte r and s
    assert isinstance(DpopKey().private.curve, ec.SECP256R1)
