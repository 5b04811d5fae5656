"""Attestation challenges (sidecar.core.attestation.challenges; §6, §7.2 rule 5, §7.4)."""

from __future__ import annotations

from pathlib import Path

from sidecar.core.attestation.challenges import (
    challenge_endpoint,
    issue_challenge,
    response_headers,
)
from sidecar.core.attestation.config import (
    CHALLENGE_HEADER,
    CHALLENGE_PURPOSE,
)
from tests.core.attestation.support import INVALID, NOW, OTHER_SECRET, SECRET, Instance, World


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
