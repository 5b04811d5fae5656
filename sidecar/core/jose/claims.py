"""Claim rules shared by every JWT the sidecar verifies (RFC 7519 §4.1).

Each function returns a reason value (a short string, stable: callers build result codes
from it) or None when the claims pass; nothing here knows an OAuth error. Each RFC module
maps the reasons to its own error codes and descriptions: a DPoP proof, a client assertion,
a jwt-bearer grant and a client attestation fail the same rule with different codes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeGuard

TimeFailure = Literal["missing_exp", "bad_time_claim", "expired", "not_yet_valid",
                      "issued_in_future", "lifetime_too_long"]
WindowFailure = Literal["too_old", "in_future"]


@dataclass(frozen=True, slots=True)
class TimeRules:
    leeway_seconds: float
    max_lifetime_seconds: float


_LATEST_DATE: Final = 2**53


def numeric_date(value: object) -> int | float | None:
    """A JSON number usable as a NumericDate (RFC 7519 §2): finite, never a bool; None
    otherwise. The type is kept (an integer `iat` stays an integer)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def float_date(value: object) -> float | None:
    """A NumericDate as a float, for arithmetic; None when it is none, or when no float can
    hold it: a JSON integer has no bound, and float(10**400) raises OverflowError. 2**53
    seconds is some 285 million years either way."""
    number = numeric_date(value)
    if number is None or not -_LATEST_DATE <= number <= _LATEST_DATE:
        return None
    return float(number)


def _claim_date(claims: Mapping[str, object], name: str) -> float | str | None:
    """The claim as a finite number, None when absent, "bad" when not a NumericDate."""
    value = claims.get(name)
    if value is None:
        return None
    number = float_date(value)
    return "bad" if number is None else number


def check_times(claims: Mapping[str, object], now: float, rules: TimeRules) -> TimeFailure | None:
    """The failed rule for an assertion's times, or None when they are acceptable.

    `exp` is required (RFC 7523 §3 item 4) and must be in the future; `nbf` and `iat`, when
    present, must not be in the future; each with `leeway_seconds` for clock skew. The
    lifetime - `exp` minus `iat`, or minus now without `iat` - is bounded, which also bounds how
    long a `jti` must be remembered.
    """
    exp, nbf, iat = (_claim_date(claims, name) for name in ("exp", "nbf", "iat"))
    if exp is None:
        return "missing_exp"
    if isinstance(exp, str) or isinstance(nbf, str) or isinstance(iat, str):
        return "bad_time_claim"
    leeway = rules.leeway_seconds
    if exp <= now - leeway:
        return "expired"
    if nbf is not None and nbf > now + leeway:
        return "not_yet_valid"
    if iat is not None and iat > now + leeway:
        return "issued_in_future"
    start = iat if iat is not None else now
    if exp - start > rules.max_lifetime_seconds + leeway:
        return "lifetime_too_long"
    return None


def time_failure_messages(subject: str) -> dict[str, str]:
    """A description for each `TimeFailure`, naming the token (`subject`: "assertion",
    "client_assertion"): the text an error carries, whichever code the caller gives it."""
    return {
        "missing_exp": f"The {subject} must have an exp claim.",
        "bad_time_claim": f"The {subject} exp, nbf or iat is not a number.",
        "expired": f"The {subject} has expired.",
        "not_yet_valid": f"The {subject} is not valid yet (nbf).",
        "issued_in_future": f"The {subject} iat is in the future.",
        "lifetime_too_long": f"The {subject} lifetime is too long.",
    }


def iat_window(iat: float, now: float, max_age: float, max_future: float) -> WindowFailure | None:
    """A proof's creation time within `[now - max_age, now + max_future]` (RFC 9449 §4.3
    step 11, §11.1; attestation PoP §7.2 rule 6): the window that bounds its replay TTL."""
    if iat < now - max_age:
        return "too_old"
    if iat > now + max_future:
        return "in_future"
    return None


def past_exp(exp: float, now: float, skew: float) -> bool:
    """RFC 7519 §4.1.4 with `skew` seconds of clock skew allowed."""
    return now > exp + skew


def before_nbf(nbf: float, now: float, skew: float) -> bool:
    """RFC 7519 §4.1.5 with `skew` seconds of clock skew allowed."""
    return now + skew < nbf


def valid_jti(value: object, max_length: int) -> TypeGuard[str]:
    """RFC 7519 §4.1.7: a non-empty string; bounded, so that replay keys stay small."""
    return isinstance(value, str) and 0 < len(value) <= max_length


def jti_ttl(exp: float, now: float, leeway: float) -> float:
    """How long an assertion's `jti` is remembered: until the assertion expires, plus the
    leeway it was accepted with (at least a second): after that, `exp` refuses it."""
    return max(float(exp) - now + leeway, 1.0)


def audience_matches(aud: object, accepted: frozenset[str], *, sole: bool) -> bool:
    """RFC 7519 §4.1.3: `aud` is a string or an array of strings.

    `sole`: draft-ietf-oauth-rfc7523bis for client authentication - the issuer must be the
    only value (a one-member array is allowed). Otherwise one accepted value among them is
    enough (RFC 7523 §3 item 3).
    """
    values = [aud] if isinstance(aud, str) else aud
    if not isinstance(values, list) or not values:
        return False
    if not all(isinstance(v, str) for v in values):
        return False
    if sole:
        return len(values) == 1 and values[0] in accepted
    return any(v in accepted for v in values)
