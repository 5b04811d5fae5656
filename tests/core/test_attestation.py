"""Attestation-based client authentication (sidecar.core.attestation;
draft-ietf-oauth-attestation-based-client-auth-10): real attester keys (EC P-256, Ed25519, a
jwks_uri attester), real client instance keys, JWTs signed with pyjwt, DPoP proofs checked by
the real `validate_proof`, the real MemoryStore for the PoP `jti`, and a fake clock."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from sidecar.adapters.memory import MemoryStore
from sidecar.core.attestation import (
    ATTEST_JWT_CLIENT_AUTH,
    ATTEST_JWT_CLIENT_AUTH_DPOP,
    CHALLENGE_HEADER,
    CHALLENGE_PURPOSE,
    LEGACY_ASSERTION_TYPE,
    AttestationPolicy,
    AttestedClient,
    attestation_mode,
    authenticate_with_attestation,
    challenge_endpoint,
    check_refresh_binding,
    issue_challenge,
    legacy_client_assertion,
    load_attesters,
    response_headers,
    verify_attestation,
)
from sidecar.core.client_authentication import AuthenticatedClient
from sidecar.core.credentials import ClientCredentials
from sidecar.core.dpop import DpopPolicy, DpopProof, validate_proof
from sidecar.core.jose.key_sets import CachingJwksSource, StaticJwksSource
from sidecar.core.jose.keys import thumbprint
from sidecar.core.nonces import WindowedHmac
from sidecar.core.registry import Client, Registry
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import AttestationSettings, ConfigError, DpopSettings
from tests.support.fakes import FakeClock, ScriptedFetcher

AS_ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"
ATTESTER = "https://attester.example.com"
ED_ATTESTER = "https://ed-attester.example.com"
REMOTE_ATTESTER = "https://remote-attester.example.com"
REMOTE_URI = "https://remote-attester.example.com/jwks"
NOW = float(int(time.time()))
SECRET = "an-attestation-challenge-secret-0123456789"
OTHER_SECRET = "another-attestation-challenge-secret-987654"


PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey, **extra: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, **extra}


def alg_of(key: PrivateKey) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"


def sign(claims: dict[str, Any], key: Any, alg: str, headers: dict[str, Any]) -> str:
    headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg,
                      headers=headers)


@dataclass
class Instance:
    """A client instance: its key, attested by an attester."""

    key: PrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key)

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def pop(self, *, alg: str | None = None, typ: str | None = "oauth-client-attestation-pop+jwt",
            key: Any = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        base: dict[str, Any] = {"aud": AS_ISSUER, "jti": uuid.uuid4().hex, "iat": int(NOW)}
        base.update(claims)
        return sign(base, key or self.key, alg or alg_of(self.key), {"typ": typ, **(headers or {})})

    def dpop(self, *, nonce: str | None = None, **claims: Any) -> str:
        base: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": ENDPOINT,
                                "iat": int(NOW), "nonce": nonce, **claims}
        return sign(base, self.key, alg_of(self.key), {"typ": "dpop+jwt", "jwk": self.jwk})


class World:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.tmp_path = tmp_path
        self.attester_key = ec.generate_private_key(ec.SECP256R1())
        self.ed_attester_key = ed25519.Ed25519PrivateKey.generate()
        self.remote_key = ec.generate_private_key(ec.SECP256R1())
        self.clock = FakeClock(NOW)
        self.store = MemoryStore(1000, "t:", self.clock)
        self.fetcher = ScriptedFetcher()
        self.fetcher.documents[REMOTE_URI] = {"keys": [public_jwk(self.remote_key, kid="r1")]}
        self.jwks = CachingJwksSource(self.fetcher, self.clock)
        (tmp_path / "ed.jwks.json").write_text(
            json.dumps({"keys": [public_jwk(self.ed_attester_key, kid="e1")]}))
        (tmp_path / "challenge-secret").write_text(SECRET + "\n")
        self.dpop_nonces = WindowedHmac((SECRET,), 60, 2, purpose="dpop-nonce")
        self.dpop_policy = DpopPolicy.from_settings(DpopSettings(), ENDPOINT)
        self.policy = self.build(**config)

    def attesters(self) -> tuple[dict[str, Any], ...]:
        return (
            {"issuer": ATTESTER, "clients": ["wallet-app", "other-app"],
             "jwks": {"keys": [public_jwk(self.attester_key, kid="a1")]}},
            {"issuer": ED_ATTESTER, "clients": ["wallet-app", "ed-app"],
             "jwks_file": "ed.jwks.json", "algorithms": ["EdDSA"]},
            {"issuer": REMOTE_ATTESTER, "clients": ["remote-app"], "jwks_uri": REMOTE_URI},
        )

    def build(self, **config: Any) -> AttestationPolicy:
        values: dict[str, Any] = {"enabled": True, "challenge_secret_file": "challenge-secret",
                                  "attesters": self.attesters(), **config}
        return AttestationPolicy.from_settings(AttestationSettings(**values), issuer=AS_ISSUER,
                                               base_dir=self.tmp_path)

    def attestation(self, instance: Instance, *, key: Any = None, kid: str | None = "a1",
                    alg: str | None = None, typ: str | None = "oauth-client-attestation+jwt",
                    headers: dict[str, Any] | None = None, cnf: Any = "instance",
                    **claims: Any) -> str:
        key = key or self.attester_key
        base: dict[str, Any] = {"sub": "wallet-app", "iat": int(NOW), "exp": int(NOW) + 3600,
                                "cnf": {"jwk": instance.jwk} if cnf == "instance" else cnf}
        base.update(claims)
        return sign(base, key, alg or alg_of(key), {"typ": typ, "kid": kid, **(headers or {})})

    async def verify(self, attestation: tuple[str, ...], pop: tuple[str, ...] = (), *,
                     dpop: DpopProof | None = None, client_id: str | None = None,
                     policy: AttestationPolicy | None = None, legacy: bool = False,
                     dpop_nonces: WindowedHmac | None = None,
                     dpop_nonce_required: bool = False) -> AttestedClient | OAuthError | None:
        return await verify_attestation(
            attestation, pop, dpop_proof=dpop, body_client_id=client_id,
            policy=policy or self.policy, now=self.clock.now(), jwks=self.jwks,
            dpop_nonces=dpop_nonces, dpop_nonce_required=dpop_nonce_required, legacy=legacy)

    async def ok(self, attestation: str, pop: str | None = None,
                 **kwargs: Any) -> AttestedClient:
        result = await self.verify((attestation,), (pop,) if pop else (), **kwargs)
        assert isinstance(result, AttestedClient), result
        return result

    async def refused(self, attestation: tuple[str, ...] | str, pop: tuple[str, ...] | str = (),
                      *, code: str, reason: str, status: int = 400, **kwargs: Any) -> OAuthError:
        attestations = (attestation,) if isinstance(attestation, str) else attestation
        pops = (pop,) if isinstance(pop, str) else pop
        result = await self.verify(attestations, pops, **kwargs)
        assert isinstance(result, OAuthError), result
        assert (result.code, result.result_code, result.status) == \
            (code, f"attestation.{reason}", status), result
        for token in (*attestations, *pops):  # nothing of a token in what the client sees
            for part in token.split("."):
                assert len(part) < 8 or part not in result.description + result.detail
        return result

    def proof(self, instance: Instance, nonce: str | None = None) -> DpopProof:
        proof = validate_proof((instance.dpop(nonce=nonce),), method="POST",
                               policy=self.dpop_policy, now=self.clock.now(), nonces=None,
                               nonce_required=False)
        assert isinstance(proof, DpopProof), proof
        return proof


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


INVALID = "invalid_client_attestation"


# ---------------------------------------------------------------------------------------
# Success: both modes, every kind of attester.


async def test_normal_mode_with_an_ec_attester(world: World) -> None:
    instance = Instance()
    result = await world.ok(world.attestation(instance), instance.pop(), client_id="wallet-app")
    assert (result.client_id, result.attester_issuer, result.instance_jkt, result.mode) == \
        ("wallet-app", ATTESTER, instance.jkt, ATTEST_JWT_CLIENT_AUTH)
    assert result.context() == [("Attestation-Issuer", ATTESTER),
                                ("Attestation-JKT", instance.jkt)]
    assert result.refresh_binding == f"att:{instance.jkt}"
    replay = result.replay
    assert replay is not None and replay.kind == "attestation_pop"
    assert replay.ttl_seconds == 71.0 and instance.jkt in replay.value


async def test_ed25519_attester_and_ed25519_instance_key(world: World) -> None:
    instance = Instance(ed25519.Ed25519PrivateKey.generate())
    token = world.attestation(instance, key=world.ed_attester_key, kid="e1", sub="ed-app")
    result = await world.ok(token, instance.pop())
    assert (result.attester_issuer, result.client_id) == (ED_ATTESTER, "ed-app")


async def test_the_attester_is_found_without_kid_and_iss(world: World) -> None:
    """-08 removed iss: the attesters that may attest the sub are tried in turn."""
    instance = Instance()
    token = world.attestation(instance, key=world.ed_attester_key, kid=None)
    assert (await world.ok(token, instance.pop())).attester_issuer == ED_ATTESTER
    token = world.attestation(instance, kid=None)
    assert (await world.ok(token, instance.pop())).attester_issuer == ATTESTER


async def test_iss_when_present_selects_the_attester(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance, iss=ATTESTER)
    assert (await world.ok(token, instance.pop())).attester_issuer == ATTESTER
    await world.refused(world.attestation(instance, iss=ED_ATTESTER), instance.pop(),
                        code=INVALID, reason="bad_signature")
    await world.refused(world.attestation(instance, iss="https://evil.example"), instance.pop(),
                        code=INVALID, reason="untrusted_attester")


async def test_combined_mode(world: World) -> None:
    instance = Instance()
    proof = world.proof(instance)
    result = await world.ok(world.attestation(instance), dpop=proof)
    assert (result.mode, result.instance_jkt, result.replay) == \
        (ATTEST_JWT_CLIENT_AUTH_DPOP, proof.jkt, None)


async def test_combined_mode_with_an_ed25519_instance_key(world: World) -> None:
    instance = Instance(ed25519.Ed25519PrivateKey.generate())
    token = world.attestation(instance, key=world.ed_attester_key, kid="e1")
    assert (await world.ok(token, dpop=world.proof(instance))).mode == ATTEST_JWT_CLIENT_AUTH_DPOP


async def test_normal_mode_alongside_dpop_with_another_key(world: World) -> None:
    """§5.2: with a PoP header, a DPoP proof of another key is validated independently."""
    instance, dpop_key = Instance(), Instance()
    result = await world.ok(world.attestation(instance), instance.pop(),
                            dpop=world.proof(dpop_key))
    assert result.mode == ATTEST_JWT_CLIENT_AUTH


async def test_jwks_uri_attester_follows_rotation(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance, key=world.remote_key, kid="r1", sub="remote-app")
    assert (await world.ok(token, instance.pop())).attester_issuer == REMOTE_ATTESTER
    rotated = ec.generate_private_key(ec.SECP256R1())
    world.fetcher.documents[REMOTE_URI] = {"keys": [public_jwk(rotated, kid="r2")]}
    world.clock.t += 61  # past the refetch rate limit
    new = world.attestation(instance, key=rotated, kid="r2", sub="remote-app",
                            iat=int(world.clock.t), exp=int(world.clock.t) + 600)
    pop = instance.pop(iat=int(world.clock.t))
    assert (await world.ok(new, pop)).attester_issuer == REMOTE_ATTESTER
    assert world.fetcher.calls == 2


async def test_jwks_uri_failure(world: World) -> None:
    instance = Instance()
    del world.fetcher.documents[REMOTE_URI]
    token = world.attestation(instance, key=world.remote_key, kid="r1", sub="remote-app")
    error = await world.refused(token, instance.pop(), code=INVALID, reason="jwks_unavailable")
    assert "HTTP status 500" in error.detail


def test_attestation_mode() -> None:
    assert attestation_mode((), (), ("d",)) is None
    assert attestation_mode(("a",), ("p",), ("d",)) == ATTEST_JWT_CLIENT_AUTH
    assert attestation_mode(("a",), (), ("d",)) == ATTEST_JWT_CLIENT_AUTH_DPOP
    assert attestation_mode(("a",), (), ()) == ATTEST_JWT_CLIENT_AUTH
    assert attestation_mode((), ("p",), ()) == ATTEST_JWT_CLIENT_AUTH


# ---------------------------------------------------------------------------------------
# Headers (§7.1 rule 1, §7.2 rule 1, §7).


async def test_no_attestation_headers_is_none(world: World) -> None:
    assert await world.verify((), (), dpop=world.proof(Instance())) is None


async def test_header_counts(world: World) -> None:
    instance = Instance()
    token, pop = world.attestation(instance), instance.pop()
    await world.refused((token, token), pop, code=INVALID, reason="multiple_headers")
    await world.refused(token, (pop, instance.pop()), code=INVALID,
                        reason="multiple_pop_headers")
    await world.refused((), pop, code=INVALID, reason="missing")
    await world.refused(token, (), code=INVALID, reason="pop_missing")


async def test_combined_mode_can_be_switched_off(world: World) -> None:
    instance = Instance()
    policy = world.build(dpop_combined=False)
    await world.refused(world.attestation(instance), dpop=world.proof(instance), policy=policy,
                        code=INVALID, reason="pop_method_unsupported")


# ---------------------------------------------------------------------------------------
# The Client Attestation JWT (§4, §7.1).


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"typ": "JWT"}, "bad_typ"),
    ({"typ": None}, "bad_typ"),
    ({"typ": "oauth-client-attestation-pop+jwt"}, "bad_typ"),
    ({"headers": {"crit": ["x"], "x": 1}}, "unsupported_crit"),
    ({"sub": None}, "bad_subject"),
    ({"sub": 42}, "bad_subject"),
    ({"sub": "wallet\r\nX-Token-Client-Id: admin"}, "bad_subject"),
    ({"exp": None}, "bad_exp"),
    ({"exp": "tomorrow"}, "bad_time_claim"),
    ({"nbf": int(NOW) + 120}, "not_yet_valid"),
    ({"iat": int(NOW) + 120}, "issued_in_future"),
    ({"cnf": None}, "bad_cnf"),
    ({"cnf": {"kid": "k"}}, "bad_cnf"),
    ({"cnf": {"jwk": {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}}}, "bad_cnf"),
    ({"cnf": {"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}}, "bad_cnf"),
])
async def test_attestation_refusals(world: World, kwargs: dict[str, Any], reason: str) -> None:
    instance = Instance()
    await world.refused(world.attestation(instance, **kwargs), instance.pop(), code=INVALID,
                        reason=reason)


async def test_typ_with_media_type_prefix_is_accepted(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance, typ="application/OAuth-Client-Attestation+JWT")
    assert await world.ok(token, instance.pop())


async def test_cnf_with_a_private_key(world: World) -> None:
    """§7.1 rule 5: the key in cnf is not a private key."""
    key = ec.generate_private_key(ec.SECP256R1())
    instance = Instance(key)
    private = ECAlgorithm.to_jwk(key, as_dict=True)
    await world.refused(world.attestation(instance, cnf={"jwk": private}), instance.pop(),
                        code=INVALID, reason="cnf_private_key")


async def test_malformed_attestations(world: World) -> None:
    instance = Instance()
    for token in ("", "not-a-jwt", "a.b.c", "a.b", "x" * 20000):
        await world.refused(token, instance.pop(), code=INVALID, reason="malformed")


async def test_algorithms(world: World) -> None:
    instance = Instance()
    hs = world.attestation(instance, key=b"a shared secret of sufficient length!!", alg="HS256")
    await world.refused(hs, instance.pop(), code=INVALID, reason="bad_alg")
    unsigned = jwt.encode({"sub": "wallet-app", "exp": int(NOW) + 60,
                           "cnf": {"jwk": instance.jwk}}, None,  # type: ignore[arg-type]
                          algorithm="none",
                          headers={"typ": "oauth-client-attestation+jwt"})
    await world.refused(unsigned + "AAAA", instance.pop(), code=INVALID, reason="bad_alg")
    # The Ed25519 attester allows EdDSA only, so an ES256 attestation is not its.
    stranger = ec.generate_private_key(ec.SECP256R1())
    await world.refused(world.attestation(instance, key=stranger, kid="e1"), instance.pop(),
                        code=INVALID, reason="bad_signature")
    policy = world.build(algorithms=["EdDSA"])
    await world.refused(world.attestation(instance), instance.pop(), policy=policy,
                        code=INVALID, reason="bad_alg")


async def test_signature(world: World) -> None:
    instance = Instance()
    stranger = ec.generate_private_key(ec.SECP256R1())
    await world.refused(world.attestation(instance, key=stranger), instance.pop(), code=INVALID,
                        reason="bad_signature")
    await world.refused(world.attestation(instance, kid="unknown"), instance.pop(),
                        code=INVALID, reason="bad_signature")
    # An attester signs only for its own clients: other-app's attester is not remote-app's.
    token = world.attestation(instance, sub="remote-app")
    await world.refused(token, instance.pop(), code=INVALID, reason="bad_signature")


async def test_unknown_client_is_invalid_client(world: World) -> None:
    """No configured attester may attest this client: RFC 6749 §5.2 "unknown client"."""
    instance = Instance()
    await world.refused(world.attestation(instance, sub="stranger-app"), instance.pop(),
                        code="invalid_client", reason="unknown_client", status=401)


async def test_client_id_must_be_the_attested_one(world: World) -> None:
    """§7.1 rule 7, §7.5."""
    instance = Instance()
    await world.refused(world.attestation(instance), instance.pop(), client_id="other-app",
                        code="invalid_client", reason="client_id_mismatch", status=401)


async def test_freshness(world: World) -> None:
    instance = Instance()
    await world.refused(world.attestation(instance, exp=int(NOW) - 61), instance.pop(),
                        code="use_fresh_attestation", reason="expired")
    assert await world.ok(world.attestation(instance, exp=int(NOW) - 30), instance.pop())
    policy = world.build(max_age_seconds=3600)
    old = world.attestation(instance, iat=int(NOW) - 4000, exp=int(NOW) + 600)
    await world.refused(old, instance.pop(), policy=policy, code="use_fresh_attestation",
                        reason="too_old")
    assert await world.ok(old, instance.pop())  # without max_age_seconds, exp decides
    no_iat = world.attestation(instance, iat=None)
    assert await world.ok(no_iat, instance.pop(), policy=policy)


async def test_an_unauthentic_expired_attestation_gets_no_hint(world: World) -> None:
    instance = Instance()
    stranger = ec.generate_private_key(ec.SECP256R1())
    expired = world.attestation(instance, key=stranger, exp=int(NOW) - 3600)
    await world.refused(expired, instance.pop(), code=INVALID, reason="bad_signature")


# ---------------------------------------------------------------------------------------
# The Client Attestation PoP JWT (§5.1, §7.2).


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"typ": "JWT"}, "pop_bad_typ"),
    ({"typ": None}, "pop_bad_typ"),
    ({"typ": "oauth-client-attestation+jwt"}, "pop_bad_typ"),
    ({"typ": "dpop+jwt"}, "pop_bad_typ"),
    ({"headers": {"crit": ["x"], "x": 1}}, "pop_unsupported_crit"),
    ({"aud": "https://other.example"}, "pop_bad_audience"),
    ({"aud": ENDPOINT}, "pop_bad_audience"),
    ({"aud": [AS_ISSUER, "https://other.example"]}, "pop_bad_audience"),
    ({"aud": None}, "pop_bad_audience"),
    ({"jti": None}, "pop_bad_jti"),
    ({"jti": ""}, "pop_bad_jti"),
    ({"jti": 7}, "pop_bad_jti"),
    ({"jti": "j" * 257}, "pop_bad_jti"),
    ({"iat": None}, "pop_missing_iat"),
    ({"iat": "now"}, "pop_bad_claim"),
    ({"iat": True}, "pop_bad_claim"),
    ({"iat": int(NOW) - 61}, "pop_iat_out_of_window"),
    ({"iat": int(NOW) + 11}, "pop_iat_out_of_window"),
    ({"exp": int(NOW) - 11}, "pop_expired"),
    ({"nbf": int(NOW) + 11}, "pop_not_yet_valid"),
    ({"iss": "other-app"}, "pop_bad_issuer"),
])
async def test_pop_refusals(world: World, kwargs: dict[str, Any], reason: str) -> None:
    instance = Instance()
    await world.refused(world.attestation(instance), instance.pop(**kwargs), code=INVALID,
                        reason=reason)


async def test_pop_accepts_a_one_member_aud_array_and_iss_of_the_client(world: World) -> None:
    instance = Instance()
    assert await world.ok(world.attestation(instance), instance.pop(aud=[AS_ISSUER],
                                                                    iss="wallet-app"))


async def test_pop_signature_and_algorithm(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance)
    other = ec.generate_private_key(ec.SECP256R1())
    await world.refused(token, instance.pop(key=other), code=INVALID, reason="pop_bad_signature")
    ed = ed25519.Ed25519PrivateKey.generate()  # EdDSA against the attested EC key
    await world.refused(token, instance.pop(key=ed, alg="EdDSA"), code=INVALID,
                        reason="pop_bad_alg")
    hs = instance.pop(key=b"a shared secret of sufficient length!!", alg="HS256")
    await world.refused(token, hs, code=INVALID, reason="pop_bad_alg")
    for bad in ("", "a.b", "not-a-jwt"):
        await world.refused(token, bad, code=INVALID, reason="pop_malformed")
    # A cnf.jwk that names another alg than the PoP's.
    pinned = world.attestation(instance, cnf={"jwk": {**instance.jwk, "alg": "ES384"}})
    await world.refused(pinned, instance.pop(), code=INVALID, reason="pop_bad_alg")


async def test_pop_jti_is_single_use_through_the_store(world: World) -> None:
    instance = Instance()
    token, pop = world.attestation(instance), instance.pop(jti="one-time")
    first, second = await world.ok(token, pop), await world.ok(token, pop)
    assert first.replay is not None and second.replay is not None
    replay = first.replay
    assert await world.store.first_use(replay.kind, replay.value, replay.ttl_seconds)
    assert not await world.store.first_use(second.replay.kind, second.replay.value,
                                           second.replay.ttl_seconds)
    assert (replay.error.code, replay.error.result_code) == (INVALID, "attestation.pop_replayed")
    # The same jti from another instance key is another PoP.
    other = Instance()
    third = await world.ok(world.attestation(other), other.pop(jti="one-time"))
    assert third.replay is not None
    assert await world.store.first_use(third.replay.kind, third.replay.value, 71.0)


# ---------------------------------------------------------------------------------------
# Challenges (§6, §7.2 rule 5, §7.4).


async def test_challenge_required_and_missing(world: World) -> None:
    instance = Instance()
    policy = world.build(challenge_required=True)
    token = world.attestation(instance)
    error = await world.refused(token, instance.pop(), policy=policy,
                                code="use_attestation_challenge", reason="challenge_missing")
    (name, challenge), = error.headers
    assert name == CHALLENGE_HEADER
    # The retry with the challenge from the error succeeds.
    assert await world.ok(token, instance.pop(challenge=challenge), policy=policy)


async def test_challenge_invalid(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance)
    for policy in (world.policy, world.build(challenge_required=True)):
        for bad in ("made-up", 42, world.dpop_nonces.issue(NOW), "A" * 43):
            error = await world.refused(token, instance.pop(challenge=bad), policy=policy,
                                        code="use_attestation_challenge",
                                        reason="challenge_invalid")
            assert error.headers[0][0] == CHALLENGE_HEADER


async def test_challenge_is_optional_unless_required(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance)
    assert await world.ok(token, instance.pop())
    challenge = issue_challenge(world.policy, NOW)
    assert await world.ok(token, instance.pop(challenge=challenge))


async def test_challenge_claim_is_ignored_when_challenges_are_off(world: World) -> None:
    instance = Instance()
    policy = world.build(challenge_secret_file="")
    assert policy.challenges is None and issue_challenge(policy, NOW) is None
    assert await world.ok(world.attestation(instance), instance.pop(challenge="anything"),
                          policy=policy)
    assert response_headers(policy, NOW) == ()
    assert response_headers(None, NOW) == ()


async def test_challenge_is_checked_only_on_an_otherwise_valid_pop(world: World) -> None:
    instance = Instance()
    policy = world.build(challenge_required=True)
    await world.refused(world.attestation(instance), instance.pop(aud="https://x.example"),
                        policy=policy, code=INVALID, reason="pop_bad_audience")


async def test_challenge_window(world: World) -> None:
    instance = Instance()
    start = NOW // 60 * 60  # the first second of a 60 s step
    challenge = issue_challenge(world.policy, start)
    assert challenge is not None
    world.clock.t = start + 179  # the step of issue and two more: still accepted
    later = world.attestation(instance, iat=int(world.clock.t))
    assert await world.ok(later, instance.pop(challenge=challenge, iat=int(world.clock.t)))
    world.clock.t = start + 180
    later = world.attestation(instance, iat=int(world.clock.t))
    await world.refused(later, instance.pop(challenge=challenge, iat=int(world.clock.t)),
                        code="use_attestation_challenge", reason="challenge_invalid")


async def test_challenge_secret_rotation(world: World, tmp_path: Path) -> None:
    instance = Instance()
    token = world.attestation(instance)
    old = issue_challenge(world.policy, NOW)
    (tmp_path / "challenge-secret").write_text(f"{OTHER_SECRET}\n{SECRET}\n")
    rotating = world.build()
    new = issue_challenge(rotating, NOW)
    assert new != old
    for challenge in (old, new):  # the first secret signs, every secret verifies
        assert await world.ok(token, instance.pop(challenge=challenge), policy=rotating)
    (tmp_path / "challenge-secret").write_text(f"{OTHER_SECRET}\n")
    rotated = world.build()
    assert await world.ok(token, instance.pop(challenge=new), policy=rotated)
    await world.refused(token, instance.pop(challenge=old), policy=rotated,
                        code="use_attestation_challenge", reason="challenge_invalid")


def test_challenge_purpose_is_separate_from_dpop_nonces(world: World) -> None:
    assert CHALLENGE_PURPOSE == "attestation-challenge"
    challenges = world.policy.challenges
    assert challenges is not None
    assert not challenges.verify(world.dpop_nonces.issue(NOW), NOW)
    assert not world.dpop_nonces.verify(challenges.issue(NOW), NOW)


def test_challenge_endpoint(world: World) -> None:
    response = challenge_endpoint(world.policy, NOW, method="POST")
    assert response.status == 200
    challenge = response.body["attestation_challenge"]
    assert world.policy.challenges is not None and world.policy.challenges.verify(challenge, NOW)
    assert ("Cache-Control", "no-store") in response.headers
    assert not any(name == "DPoP-Nonce" for name, _ in response.headers)
    with_nonce = challenge_endpoint(world.policy, NOW, method="POST",
                                    dpop_nonces=world.dpop_nonces)
    nonce = dict(with_nonce.headers)["DPoP-Nonce"]
    assert world.dpop_nonces.verify(nonce, NOW)
    get = challenge_endpoint(world.policy, NOW, method="GET")
    assert (get.status, dict(get.headers)["Allow"], get.body["error"]) == \
        (405, "POST", "invalid_request")
    off = challenge_endpoint(world.build(challenge_secret_file=""), NOW, method="POST")
    assert off.status == 404 and ("Cache-Control", "no-store") in off.headers
    (name, value), = response_headers(world.policy, NOW)
    assert name == CHALLENGE_HEADER and value == challenge


# ---------------------------------------------------------------------------------------
# Combined mode (§5.2, §7.3, §7.4).


async def test_combined_mode_key_must_be_the_attested_key(world: World) -> None:
    instance, other = Instance(), Instance()
    await world.refused(world.attestation(instance), dpop=world.proof(other), code=INVALID,
                        reason="dpop_key_mismatch")


async def test_combined_mode_challenge_as_dpop_nonce(world: World) -> None:
    """-10: the challenge goes in the DPoP nonce; -11: use_dpop_nonce with DPoP-Nonce."""
    instance = Instance()
    policy = world.build(challenge_required=True)
    token = world.attestation(instance)
    error = await world.refused(token, dpop=world.proof(instance), policy=policy,
                                code="use_dpop_nonce", reason="dpop_nonce_missing")
    headers = dict(error.headers)
    assert headers["DPoP-Nonce"] == headers[CHALLENGE_HEADER]
    assert await world.ok(token, dpop=world.proof(instance, headers["DPoP-Nonce"]),
                          policy=policy)
    # A DPoP nonce of the sidecar's (-11: the nonce mechanism of RFC 9449) is accepted too.
    nonce = world.dpop_nonces.issue(NOW)
    assert await world.ok(token, dpop=world.proof(instance, nonce), policy=policy,
                          dpop_nonces=world.dpop_nonces)
    await world.refused(token, dpop=world.proof(instance, nonce), policy=policy,
                        code="use_dpop_nonce", reason="dpop_nonce_invalid")
    await world.refused(token, dpop=world.proof(instance, "made-up"), policy=policy,
                        code="use_dpop_nonce", reason="dpop_nonce_invalid",
                        dpop_nonces=world.dpop_nonces)


async def test_combined_mode_nonce_without_challenges(world: World) -> None:
    instance = Instance()
    policy = world.build(challenge_secret_file="")
    token = world.attestation(instance)
    # Nothing of ours to check against: the nonce is the upstream's affair.
    assert await world.ok(token, dpop=world.proof(instance, "upstream-nonce"), policy=policy)
    # DPoP nonces required, no challenges: a DPoP nonce is issued.
    error = await world.refused(token, dpop=world.proof(instance), policy=policy,
                                dpop_nonces=world.dpop_nonces, dpop_nonce_required=True,
                                code="use_dpop_nonce", reason="dpop_nonce_missing")
    assert list(dict(error.headers)) == ["DPoP-Nonce"]
    assert world.dpop_nonces.verify(error.headers[0][1], NOW)
    unconfigured = await world.verify((token,), dpop=world.proof(instance), policy=policy,
                                      dpop_nonce_required=True)
    assert isinstance(unconfigured, OAuthError) and unconfigured.status == 500


async def test_combined_mode_optional_challenge(world: World) -> None:
    instance = Instance()
    token = world.attestation(instance)
    assert await world.ok(token, dpop=world.proof(instance))
    await world.refused(token, dpop=world.proof(instance, "made-up"), code="use_dpop_nonce",
                        reason="dpop_nonce_invalid")


# ---------------------------------------------------------------------------------------
# Drafts -00...-02: client_assertion = attestation "~" PoP.


def legacy_params(value: str, **extra: str) -> FormParams:
    return FormParams({"grant_type": ("authorization_code",), "code": ("c",),
                       "client_assertion_type": (LEGACY_ASSERTION_TYPE,),
                       "client_assertion": (value,),
                       **{k: (v,) for k, v in extra.items()}})


def test_legacy_client_assertion_is_split() -> None:
    parsed = legacy_client_assertion(legacy_params("a.b.c~d.e.f", client_id="wallet-app"))
    assert parsed is not None and not isinstance(parsed, OAuthError)
    assert (parsed.attestation, parsed.pop) == (("a.b.c",), ("d.e.f",))
    assert sorted(parsed.remaining) == ["client_id", "code", "grant_type"]
    assert "a.b.c" not in repr(parsed)
    other = FormParams({"client_assertion_type": ("urn:ietf:params:oauth:client-assertion-"
                                                  "type:jwt-bearer",),
                        "client_assertion": ("x",)})
    assert legacy_client_assertion(other) is None
    assert legacy_client_assertion(FormParams({})) is None
    for bad in ("a.b.c", "a~b~c", "~d.e.f", "a.b.c~"):
        error = legacy_client_assertion(legacy_params(bad))
        assert isinstance(error, OAuthError)
        assert (error.code, error.result_code, error.status) == \
            ("invalid_client", "attestation.legacy_malformed", 401)


async def test_legacy_form_is_verified(world: World) -> None:
    instance = Instance()
    # -00...-02: iss on both JWTs, no typ, a PoP with exp and no iat, aud among others.
    token = world.attestation(instance, typ=None, iss=ATTESTER)
    pop = instance.pop(typ=None, iat=None, exp=int(NOW) + 60, iss="wallet-app",
                       aud=[AS_ISSUER, ENDPOINT])
    parsed = legacy_client_assertion(legacy_params(f"{token}~{pop}"))
    assert parsed is not None and not isinstance(parsed, OAuthError)
    result = await world.verify(parsed.attestation, parsed.pop, legacy=True)
    assert isinstance(result, AttestedClient) and result.legacy
    assert result.replay is not None
    assert (result.replay.error.code, result.replay.error.status) == ("invalid_client", 401)
    # A nonce claim serves as the challenge.
    policy = world.build(challenge_required=True)
    challenge = issue_challenge(policy, NOW)
    assert challenge is not None
    noncey = instance.pop(typ=None, iat=None, exp=int(NOW) + 60, nonce=challenge)
    assert isinstance(await world.verify((token,), (noncey,), legacy=True, policy=policy),
                      AttestedClient)


async def test_legacy_refusals_are_invalid_client(world: World) -> None:
    instance = Instance()
    stranger = ec.generate_private_key(ec.SECP256R1())
    await world.refused(world.attestation(instance, key=stranger, typ=None), instance.pop(),
                        legacy=True, code="invalid_client", reason="bad_signature", status=401)
    await world.refused(world.attestation(instance, typ=None), instance.pop(exp=int(NOW) + 3600,
                                                                            iat=None),
                        legacy=True, code="invalid_client", reason="pop_lifetime_too_long",
                        status=401)
    await world.refused(world.attestation(instance, typ=None), instance.pop(iat=None),
                        legacy=True, code="invalid_client", reason="pop_missing_iat", status=401)
    await world.refused(world.attestation(instance, exp=int(NOW) - 600), instance.pop(),
                        legacy=True, code="invalid_client", reason="expired", status=401)
    # A typ of another kind of JWT is still refused.
    await world.refused(world.attestation(instance, typ="dpop+jwt"), instance.pop(),
                        legacy=True, code="invalid_client", reason="bad_typ", status=401)


# ---------------------------------------------------------------------------------------
# The attestation among the client's credentials (RFC 6749 §2.3, draft §7.5, §7.6).


def attested(mode: str = ATTEST_JWT_CLIENT_AUTH, client_id: str = "wallet-app") -> AttestedClient:
    return AttestedClient(client_id, ATTESTER, "jkt", mode)  # type: ignore[arg-type]


def registry(*clients: Client) -> Registry:
    return Registry({c.client_id: c for c in clients})


NONE = ClientCredentials(None, "none")
SECRET_POST = ClientCredentials("wallet-app", "client_secret_post", secret="s")


def test_attestation_alone_authenticates() -> None:
    assert authenticate_with_attestation(attested(), NONE, None) == \
        AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
    client = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    result = authenticate_with_attestation(attested(), ClientCredentials("wallet-app", "none"),
                                           registry(client))
    assert result == AuthenticatedClient(client, True, ATTEST_JWT_CLIENT_AUTH)
    dpop_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH_DPOP)
    assert isinstance(authenticate_with_attestation(attested(ATTEST_JWT_CLIENT_AUTH_DPOP), NONE,
                                                    registry(dpop_only)), AuthenticatedClient)


def expect(result: object, code: str, reason: str, status: int) -> None:
    assert isinstance(result, OAuthError), result
    assert (result.code, result.result_code, result.status) == \
        (code, f"attestation.{reason}", status)


def test_attestation_plus_another_method() -> None:
    client = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    expect(authenticate_with_attestation(attested(), SECRET_POST, registry(client)),
           "invalid_request", "multiple_methods", 400)
    expect(authenticate_with_attestation(attested(), SECRET_POST, None),
           "invalid_request", "multiple_methods", 400)
    basic = ClientCredentials("wallet-app", "client_secret_basic", secret="s", used_basic=True)
    expect(authenticate_with_attestation(attested(), basic, None),
           "invalid_request", "multiple_methods", 400)
    assertion = ClientCredentials("wallet-app", "private_key_jwt", assertion="a.b.c")
    expect(authenticate_with_attestation(attested(), assertion, None),
           "invalid_request", "multiple_methods", 400)


def test_attestation_as_an_additional_signal() -> None:
    """§7.6: registered as a signal, the attestation rides along the registered method."""
    client = Client("wallet-app", "client_secret_post", attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), SECRET_POST, registry(client)) is None
    public = Client("wallet-app", "none", attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), NONE, registry(public)) is None
    expect(authenticate_with_attestation(
        attested(), replace(SECRET_POST, client_id="other-app"), registry(client)),
        "invalid_client", "client_id_mismatch", 401)


def test_registered_method_and_unknown_clients() -> None:
    secret_client = Client("wallet-app", "client_secret_basic")
    expect(authenticate_with_attestation(attested(), NONE, registry(secret_client)),
           "invalid_client", "wrong_method", 401)
    dpop_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH_DPOP)
    expect(authenticate_with_attestation(attested(), NONE, registry(dpop_only)),
           "invalid_client", "wrong_method", 401)
    expect(authenticate_with_attestation(attested(), NONE, registry()),
           "invalid_client", "unregistered_client", 401)
    assert authenticate_with_attestation(attested(), NONE, registry(), unknown="forward") == \
        AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
    expect(authenticate_with_attestation(attested(), ClientCredentials("x", "none"), None),
           "invalid_client", "client_id_mismatch", 401)


def test_a_certificate_alone_is_a_method_only_for_tls_clients() -> None:
    certificate = ClientCredentials("wallet-app", "tls_client_auth")
    binding_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    assert isinstance(authenticate_with_attestation(attested(), certificate,
                                                    registry(binding_only)), AuthenticatedClient)
    tls = Client("wallet-app", "tls_client_auth")
    expect(authenticate_with_attestation(attested(), certificate, registry(tls)),
           "invalid_request", "multiple_methods", 400)
    signal = replace(tls, attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), certificate, registry(signal)) is None


def test_refresh_binding_to_the_instance_key() -> None:
    """§10.3: refreshed only with an attestation of the same instance key."""
    assert check_refresh_binding("jkt", attested()) is None
    for presented in (AttestedClient("wallet-app", ATTESTER, "other", ATTEST_JWT_CLIENT_AUTH),
                      None):
        error = check_refresh_binding("jkt", presented)
        assert isinstance(error, OAuthError)
        assert (error.code, error.result_code) == \
            ("invalid_grant", "binding.attestation_key_mismatch")


# ---------------------------------------------------------------------------------------
# Configuration: [attestation] and [[attestation.attesters]].


def test_policy_from_settings(world: World) -> None:
    policy = world.policy
    assert policy.issuer == AS_ISSUER and policy.challenges is not None
    assert [a.issuer for a in policy.attesters] == [ATTESTER, ED_ATTESTER, REMOTE_ATTESTER]
    assert [a.issuer for a in policy.attesters_for("wallet-app")] == [ATTESTER, ED_ATTESTER]
    assert policy.jwks_uris == {REMOTE_URI}
    assert policy.challenges.purpose == CHALLENGE_PURPOSE
    assert policy.pop_replay_ttl_seconds == 71.0
    defaults = AttestationSettings()
    assert (defaults.enabled, defaults.challenge_required, defaults.challenge_path,
            defaults.accept_legacy_client_assertion, defaults.dpop_combined) == \
        (False, False, "/attestation-challenge", False, True)


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return "\n".join(excinfo.value.problems)


@pytest.mark.parametrize(("config", "expected"), [
    ({"challenge_required": True, "challenge_secret_file": ""},
     "attestation.challenge_required: needs attestation.challenge_secret_file"),
    ({"challenge_secret_file": "missing"}, "attestation.challenge_secret_file: cannot read"),
    ({"algorithms": ["HS256"]}, "attestation.algorithms: unsupported ['HS256']"),
    ({"algorithms": []}, "attestation.algorithms"),
    ({"attesters": ()}, "attestation.attesters: at least one"),
    ({"challenge_path": "challenge"}, "attestation.challenge_path"),
    ({"challenge_step_seconds": 0}, "attestation.challenge_step_seconds"),
    ({"pop_iat_max_age_seconds": -1}, "attestation.pop_iat_max_age_seconds"),
])
def test_policy_config_errors(world: World, config: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        world.build(**config)
    assert expected in problems(excinfo)


def test_short_challenge_secret(world: World, tmp_path: Path) -> None:
    (tmp_path / "short").write_text("too-short\n")
    with pytest.raises(ConfigError) as excinfo:
        world.build(challenge_secret_file="short")
    assert problems(excinfo).startswith("attestation.challenge_secret_file: ")


@pytest.mark.parametrize(("table", "expected"), [
    ({"clients": ["a"], "jwks_uri": REMOTE_URI}, "attestation.attesters[0].issuer: required"),
    ({"issuer": "x\n", "clients": ["a"], "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].issuer: must be printable ASCII"),
    ({"issuer": ATTESTER, "clients": ["a"]}, "attestation.attesters[0].jwks_file: needs exactly"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "jwks_file": "f.json"},
     "needs exactly one of jwks, jwks_file, jwks_uri"),
    ({"issuer": ATTESTER, "jwks_uri": REMOTE_URI}, "attestation.attesters[0].clients: required"),
    ({"issuer": ATTESTER, "clients": [], "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].clients: expected a non-empty list"),
    ({"issuer": ATTESTER, "clients": "wallet-app", "jwks_uri": REMOTE_URI},
     "attestation.attesters[0].clients: expected a list of strings"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": "ftp://x"},
     "attestation.attesters[0].jwks_uri"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_file": "missing.json"},
     "attestation.attesters[0].jwks_file: cannot read"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks": {"keys": []}},
     "attestation.attesters[0].jwks: the JWKS has no usable signing key"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "algorithms": ["HS256"]},
     "attestation.attesters[0].algorithms: unsupported"),
    ({"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI, "extra": 1},
     "attestation.attesters[0].extra: unknown key"),
])
def test_attester_config_errors(tmp_path: Path, table: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([table], tmp_path)
    assert expected in problems(excinfo)


def test_attester_list_errors(tmp_path: Path) -> None:
    good = {"issuer": ATTESTER, "clients": ["a"], "jwks_uri": REMOTE_URI}
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([good, good, "x"], tmp_path)
    assert problems(excinfo) == (
        f"attestation.attesters[1].issuer: {ATTESTER!r} is listed twice\n"
        "attestation.attesters[2]: expected a table")
    with pytest.raises(ConfigError):
        load_attesters({"issuer": ATTESTER}, tmp_path)
    assert load_attesters(None, tmp_path) == ()


def test_private_attester_keys_are_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = ECAlgorithm.to_jwk(key, as_dict=True)
    with pytest.raises(ConfigError) as excinfo:
        load_attesters([{"issuer": ATTESTER, "clients": ["a"], "jwks": {"keys": [private]}}],
                       tmp_path)
    assert "private" in problems(excinfo)


async def test_verification_never_raises(world: World) -> None:
    """Whatever arrives, a 4xx error value (here a JWKS source that blows up)."""

    class Broken(StaticJwksSource):
        async def keys_for(self, owner: str, jwks_uri: str, kid: str | None = None, *,
                           x5t_s256: str | None = None) -> Any:
            raise RuntimeError("bug")

    instance = Instance()
    token = world.attestation(instance, key=world.remote_key, kid="r1", sub="remote-app")
    result = await verify_attestation((token,), (instance.pop(),), dpop_proof=None,
                                      body_client_id=None, policy=world.policy, now=NOW,
                                      jwks=Broken())
    assert isinstance(result, OAuthError)
    assert (result.code, result.result_code, result.status) == \
        (INVALID, "attestation.malformed", 400)
