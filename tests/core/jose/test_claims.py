"""Claim-time rules and audiences shared by every signed assertion (sidecar.core.jose.claims;
RFC 7519 §4.1.3-§4.1.6, RFC 7523 §3)."""

from __future__ import annotations

import pytest

from sidecar.core.jose.claims import (
    TimeRules,
    audience_matches,
    check_times,
    float_date,
    iat_window,
    jti_ttl,
    numeric_date,
    time_failure_messages,
    valid_jti,
)

NOW = 1_700_000_000.0
RULES = TimeRules(leeway_seconds=60, max_lifetime_seconds=300)


@pytest.mark.parametrize(("claims", "expected"), [
    ({"exp": NOW + 60}, None),
    ({"exp": NOW + 60, "iat": NOW, "nbf": NOW}, None),
    ({}, "missing_exp"),
    ({"exp": "soon"}, "bad_time_claim"),
    ({"exp": True}, "bad_time_claim"),
    ({"exp": NOW + 60, "iat": "now"}, "bad_time_claim"),
    ({"exp": NOW - 61}, "expired"),
    ({"exp": NOW - 30}, None),  # within the leeway
    ({"exp": NOW + 60, "nbf": NOW + 61}, "not_yet_valid"),
    ({"exp": NOW + 60, "nbf": NOW + 59}, None),
    ({"exp": NOW + 120, "iat": NOW + 61}, "issued_in_future"),
    ({"exp": NOW + 120, "iat": NOW + 59}, None),
    ({"exp": NOW + 400}, "lifetime_too_long"),
    ({"exp": NOW + 350}, None),  # 350 <= 300 + 60 leeway
    ({"exp": NOW + 300, "iat": NOW - 100}, "lifetime_too_long"),
    # JSON integers are unbounded: one no float holds is refused, never an OverflowError.
    ({"exp": 10**400}, "bad_time_claim"),
    ({"exp": NOW + 60, "iat": -(10**400)}, "bad_time_claim"),
])
def test_check_times(claims: dict[str, object], expected: str | None) -> None:
    assert check_times(claims, NOW, RULES) == expected


ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"


@pytest.mark.parametrize(("aud", "sole", "expected"), [
    (ISSUER, True, True),
    ([ISSUER], True, True),
    ([ISSUER, "https://other"], True, False),
    (ENDPOINT, True, False),
    ([ISSUER, "https://other"], False, True),
    (["https://other"], False, False),
    ([], False, False),
    (None, False, False),
    ([ISSUER, 7], False, False),
    (7, True, False),
])
def test_audience_matches(aud: object, sole: bool, expected: bool) -> None:
    accepted = frozenset({ISSUER}) if sole else frozenset({ISSUER, ENDPOINT})
    assert audience_matches(aud, accepted, sole=sole) is expected


@pytest.mark.parametrize(("jti", "ok"), [("a", True), ("x" * 256, True), ("x" * 257, False),
                                         ("", False), (None, False), (7, False)])
def test_valid_jti(jti: object, ok: bool) -> None:
    assert valid_jti(jti, 256) is ok  # RFC 7519 §4.1.7, bounded for the replay keys


def test_a_jti_is_remembered_until_its_assertion_expires() -> None:
    assert jti_ttl(NOW + 120, NOW, 60) == 180.0  # exp, plus the leeway it was accepted with
    assert jti_ttl(NOW - 59.5, NOW, 60) == 1.0  # at least a second


@pytest.mark.parametrize(("iat", "expected"), [(NOW - 61, "too_old"), (NOW - 60, None),
                                               (NOW + 10, None), (NOW + 11, "in_future")])
def test_iat_window(iat: float, expected: str | None) -> None:
    assert iat_window(iat, NOW, 60, 10) == expected


def test_every_time_failure_has_a_message() -> None:
    messages = time_failure_messages("assertion")
    every: list[dict[str, object]] = [
        {}, {"exp": "x"}, {"exp": NOW - 100}, {"exp": NOW + 60, "nbf": NOW + 100},
        {"exp": NOW + 120, "iat": NOW + 100}, {"exp": NOW + 1000}]
    failures = {check_times(claims, NOW, RULES) for claims in every}
    assert failures == set(messages)
    assert messages["expired"] == "The assertion has expired."


@pytest.mark.parametrize(("value", "expected"), [
    (1_700_000_000, 1_700_000_000.0), (1.5, 1.5), (2**53, float(2**53)), (2**53 + 1, None),
    (10**400, None), (-(10**400), None), (float("nan"), None), (True, None), ("1", None)])
def test_float_date(value: object, expected: float | None) -> None:
    assert float_date(value) == expected
    assert numeric_date(10**400) == 10**400  # a number all the same: DPoP's iat window says why
