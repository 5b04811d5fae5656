"""The claims of a proof (RFC 9449 §4.3 steps 3, 8, 9, 11 and 12), `exp`/`nbf` when present
(RFC 7519 §4.1.4, §4.1.5)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from sidecar.core.dpop import errors as e
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.htu import normalize_htu
from sidecar.core.jose.claims import before_nbf, iat_window, numeric_date, past_exp, valid_jti
from sidecar.core.jose.compact import b64url_encode
from sidecar.core.syntax import clip
from sidecar.errors import OAuthError


def check_claims(claims: Mapping[str, object], *, method: str, policy: DpopPolicy, now: float,
                 targets: frozenset[str], ath: str | None) -> OAuthError | None:
    # §4.3 step 3: the claims required by §4.2.
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            return e.invalid("missing_claim", f"The DPoP proof has no {name} claim.")
    # §4.2 / §11.1: jti is a unique identifier; bounded so replay keys stay small.
    jti = claims["jti"]
    if not valid_jti(jti, policy.max_jti_length):
        return e.BAD_JTI.with_detail(
            f"jti of type {type(jti).__name__}" if not isinstance(jti, str)
            else f"jti length {len(jti)}, at most {policy.max_jti_length}")
    # §4.3 step 8: htm matches the method (methods are case-sensitive, RFC 9110 §9.1).
    htm = claims["htm"]
    if htm != method:
        return e.BAD_HTM.with_detail(f"htm={clip(htm)} method={clip(method)}")
    # §4.3 step 9: htu matches the endpoint, query and fragment ignored, after RFC 3986
    # normalisation. Both values go to the log (never to the client).
    claimed = claims["htu"]
    normalised = normalize_htu(claimed) if isinstance(claimed, str) else None
    if normalised is None or normalised not in targets:
        return e.BAD_HTU.with_detail(
            f"htu={clip(claimed)} normalised={clip(normalised)} expected={sorted(targets)}")
    error = check_times(claims, policy, now)
    if error is not None:
        return error
    if ath is not None:
        return check_ath(claims, ath)
    # §4.3 step 12 applies to resource servers only; a token endpoint may refuse ath by policy.
    if policy.reject_ath and "ath" in claims:
        return e.ATH
    return None


def access_token_hash(access_token: str) -> str:
    """§4.2: `ath` is base64url(SHA-256(ASCII of the access token)), no padding."""
    return b64url_encode(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())


def check_ath(claims: Mapping[str, object], expected: str) -> OAuthError | None:
    # §4.3 step 12, §7: a proof presented with an access token carries its hash.
    if "ath" not in claims:
        return e.NO_ATH
    presented = claims["ath"]
    if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode("utf-8", "surrogatepass"), expected.encode("ascii")):
        return e.BAD_ATH.with_detail(f"ath={clip(presented)}")
    return None


def check_times(claims: Mapping[str, object], policy: DpopPolicy,
                now: float) -> OAuthError | None:
    # §4.3 step 11, §11.1: iat within [now - max_age, now + max_future].
    iat = numeric_date(claims["iat"])
    if iat is None:
        return e.BAD_IAT
    outside = iat_window(iat, now, policy.iat_max_age_seconds, policy.iat_max_future_seconds)
    if outside is not None:
        return e.invalid("iat_out_of_window", e.WINDOW_DESCRIPTIONS[outside],
                         f"iat={clip(iat)} now={now:.3f} window=-{policy.iat_max_age_seconds}s/"
                         f"+{policy.iat_max_future_seconds}s")
    # Not in RFC 9449, but a JWT that carries them must honour them (RFC 7519 §4.1.4,
    # §4.1.5); the clock-skew allowance is the one granted to a future iat.
    skew = policy.iat_max_future_seconds
    if "exp" in claims:
        exp = numeric_date(claims["exp"])
        if exp is None:
            return e.BAD_EXP
        if past_exp(exp, now, skew):
            return e.EXPIRED.with_detail(f"exp={exp} now={now:.3f}")
    if "nbf" in claims:
        nbf = numeric_date(claims["nbf"])
        if nbf is None:
            return e.BAD_NBF
        if before_nbf(nbf, now, skew):
            return e.NOT_YET_VALID.with_detail(f"nbf={nbf} now={now:.3f}")
    return None
