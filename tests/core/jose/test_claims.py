"""Claim-time rules and audiences shared by every signed assertion (sidecar.core.jose.claims;
RFC 7519 §4.1.3-§4.1.6, RFC 7523 §3)."""

from __future__ import annotations

import pytest

from sidecar.core.jose.claims import TimeRules, audience_matches, check_times

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
