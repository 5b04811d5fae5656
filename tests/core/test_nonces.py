"""Windowed HMAC nonces (sidecar.core.nonces): DPoP nonces (RFC 9449 §8) and attestation
challenges, stateless across replicas."""

from __future__ import annotations

import math
import re

import pytest

from sidecar.core.nonces import WindowedHmac

SECRET_A = "a" * 40
SECRET_B = "b" * 40
T0 = 1_700_000_000.0  # step 28333333, 20 s into it
NQCHAR = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def nonces(*secrets: str, purpose: str = "dpop-nonce", window: int = 2) -> WindowedHmac:
    return WindowedHmac(secrets or (SECRET_A,), 60, window, purpose)


def test_nonce_shape_is_nqchar_base64url() -> None:
    value = nonces().issue(T0)
    assert len(value) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)
    assert NQCHAR.fullmatch(value)


def test_nonce_is_stable_within_a_step_and_changes_between_steps() -> None:
    issuer = nonces()
    step_start = math.floor(T0 / 60) * 60
    assert issuer.issue(step_start) == issuer.issue(step_start + 59.999)
    assert issuer.issue(step_start) != issuer.issue(step_start + 60)


@pytest.mark.parametrize(("issued_offset", "accepted"), [
    (0, True), (-60, True), (-120, True), (-180, False), (-600, False),
    (60, True), (120, True), (180, False),
])
def test_nonce_window(issued_offset: float, accepted: bool) -> None:
    value = nonces().issue(T0 + issued_offset)
    assert nonces().verify(value, T0) is accepted


def test_nonce_lifetime_is_at_least_window_steps() -> None:
    issuer = nonces()
    value = issuer.issue(T0)
    step_end = (math.floor(T0 / 60) + 1) * 60
    assert issuer.verify(value, T0 + 120)  # at least two full steps
    assert issuer.verify(value, step_end + 119.999)
    assert not issuer.verify(value, step_end + 120)
    assert issuer.lifetime_seconds == 180


def test_nonce_window_zero() -> None:
    issuer = nonces(window=0)
    value = issuer.issue(T0)
    assert issuer.verify(value, T0 + 30)
    assert not issuer.verify(value, T0 + 60)


def test_every_replica_with_the_secret_accepts_every_replicas_nonces() -> None:
    replica_1, replica_2 = nonces(), nonces()
    assert replica_1.issue(T0) == replica_2.issue(T0)
    assert replica_2.verify(replica_1.issue(T0 - 70), T0)


def test_rotation_first_signs_all_verify() -> None:
    old = nonces(SECRET_A)
    during = nonces(SECRET_B, SECRET_A)  # new secret added on top
    after = nonces(SECRET_B)  # old secret removed
    assert during.issue(T0) == after.issue(T0) != old.issue(T0)
    assert during.verify(old.issue(T0), T0)  # nonces handed out before the rotation
    assert old.verify(during.issue(T0), T0) is False  # a replica not yet rotated
    assert after.verify(old.issue(T0), T0) is False


def test_purpose_separates_nonces() -> None:
    dpop_nonces = nonces(purpose="dpop-nonce")
    challenges = nonces(purpose="attestation-challenge")
    assert dpop_nonces.issue(T0) != challenges.issue(T0)
    assert not challenges.verify(dpop_nonces.issue(T0), T0)
    assert not dpop_nonces.verify(challenges.issue(T0), T0)


@pytest.mark.parametrize("value", [None, 1, b"x", "", "x" * 42, "x" * 44, "+" * 43,
                                   "é" * 43, "A" * 42 + "=", "A" * 43, "\x00" * 43])
def test_nonce_verify_refuses_garbage(value: object) -> None:
    assert nonces().verify(value, T0) is False


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_nonce_verify_with_a_broken_clock_is_false(now: float) -> None:
    assert nonces().verify(nonces().issue(T0), now) is False


def test_nonce_verify_far_times_do_not_raise() -> None:
    issuer = nonces()
    assert issuer.verify(issuer.issue(1e300), 1e300)
    assert issuer.verify(issuer.issue(-1e12), -1e12)


@pytest.mark.parametrize(("secrets", "step", "window", "purpose"), [
    ((), 60, 2, "p"), (("",), 60, 2, "p"), (("s",), 0, 2, "p"), (("s",), 60, -1, "p"),
    (("s",), 60, 2, ""), (("s",), 60, 2, "a\x00b"),
])
def test_nonce_config_errors(secrets: tuple[str, ...], step: int, window: int,
                             purpose: str) -> None:
    with pytest.raises(ValueError):
        WindowedHmac(secrets, step, window, purpose)


def test_nonce_issue_is_memoised() -> None:
    issuer = nonces()
    first = issuer.issue(T0)
    assert issuer.issue(T0 + 1) is first
