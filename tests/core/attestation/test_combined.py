"""Combined mode (sidecar.core.attestation.combined; §5.2, §7.3, §7.4)."""

from __future__ import annotations

from sidecar.core.attestation.config import (
    CHALLENGE_HEADER,
)
from sidecar.errors import OAuthError
from tests.core.attestation.support import INVALID, NOW, Instance, World


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
