"""Verifying the attestation headers (sidecar.core.attestation.verification;
draft-ietf-oauth-attestation-based-client-auth §4, §7, §7.1)."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm

from sidecar.adapters.jwks import StaticJwksSource
from sidecar.core.attestation.config import (
    ATTEST_JWT_CLIENT_AUTH,
    ATTEST_JWT_CLIENT_AUTH_DPOP,
)
from sidecar.core.attestation.verification import attestation_mode, verify_attestation
from sidecar.errors import OAuthError
from tests.core.attestation.support import (
    ATTESTER,
    ED_ATTESTER,
    INVALID,
    NOW,
    REMOTE_ATTESTER,
    REMOTE_URI,
    Instance,
    World,
    public_jwk,
)


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
