"""The Client Attestation PoP JWT (§5.1, §7.2): every check but the replay, which is returned as
a `ReplayCheck` for the pipeline's last step, never burned here."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar import errors
from sidecar.core.attestation.challenges import check_challenge
from sidecar.core.attestation.config import ATTESTATION_POP_JTI, POP_TYP, AttestationPolicy
from sidecar.core.attestation.results import (
    POP_ALG,
    POP_AUDIENCE,
    POP_CRIT,
    POP_ISSUER,
    POP_JTI,
    POP_MALFORMED,
    POP_REPLAYED,
    POP_SIGNATURE,
    POP_TYP_ERROR,
    refused,
)
from sidecar.core.jose.claims import (
    audience_matches,
    before_nbf,
    iat_window,
    numeric_date,
    past_exp,
    valid_jti,
)
from sidecar.core.jose.compact import parse_compact_jws
from sidecar.core.jose.key_sets import (
    JwkEntry,
    select_keys,
    verify_signature,
)
from sidecar.core.syntax import clip
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck


def typ_ok(typ: object, expected: str, legacy: bool) -> bool:
    if legacy and (typ is None or (isinstance(typ, str) and typ.lower() == "jwt")):
        return True  # explicit typing came with -04
    # RFC 7515 §4.1.9: the "application/" prefix may be omitted; media types are
    # case-insensitive.
    return isinstance(typ, str) and typ.lower().removeprefix("application/") == expected


def check_pop(token: str, client_id: str, entry: JwkEntry, *, policy: AttestationPolicy,
               now: float, legacy: bool) -> ReplayCheck | OAuthError:
    """§5.1 and §7.2: every check but the replay; the `jti` to burn when they all pass."""
    jws = parse_compact_jws(token)
    if jws is None:
        return POP_MALFORMED
    if "crit" in jws.header:
        return POP_CRIT
    if not typ_ok(jws.header.get("typ"), POP_TYP, legacy):
        return POP_TYP_ERROR.with_detail(f"typ={clip(jws.header.get('typ'), 60)}")
    alg, key = jws.alg, entry.key
    # §7.2 rule 3, §5.1 rule 2: an allowed asymmetric alg, of the attested key's type.
    if alg is None or alg not in policy.algorithms or not select_keys([entry], alg, None):
        return POP_ALG.with_detail(f"alg={clip(alg, 60)} kty={key.kty}")
    if not verify_signature(jws, alg, [entry]):  # §7.2 rule 4
        return POP_SIGNATURE
    claims = jws.claims
    # §5.1: a single audience, the issuer (the -00...-02 text only asked for "a value").
    if not audience_matches(claims.get("aud"), frozenset({policy.issuer}), sole=not legacy):
        return POP_AUDIENCE
    jti = claims.get("jti")
    if not valid_jti(jti, policy.max_jti_length):
        return POP_JTI
    if "iss" in claims and claims["iss"] != client_id:  # -07 and earlier: iss = client_id
        return POP_ISSUER
    error = _check_pop_times(claims, policy, now, legacy)
    if error is not None:
        return error
    # §7.2 rule 5, last: a retry with the challenge must succeed (as for DPoP nonces).
    challenge = claims.get("challenge", claims.get("nonce") if legacy else None)
    present = "challenge" in claims or (legacy and "nonce" in claims)
    error = check_challenge(challenge, present, policy, now)
    if error is not None:
        return error
    # §12.1: jtis are remembered for the iat window; unique per instance key.
    replayed = POP_REPLAYED if not legacy else errors.invalid_client(
        POP_REPLAYED.result_code, POP_REPLAYED.description)
    return ReplayCheck(ATTESTATION_POP_JTI, f"{key.thumbprint}:{jti}",
                       policy.pop_replay_ttl_seconds, replayed)


def _check_pop_times(claims: Mapping[str, object], policy: AttestationPolicy, now: float,
                     legacy: bool) -> OAuthError | None:
    """§7.2 rule 6: the creation time within the window; `exp` and `nbf`, when present, are
    honoured (RFC 7519; the PoP of -00...-05 had an `exp` and no required `iat`)."""
    numbers: dict[str, float] = {}
    for name in ("iat", "exp", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        number = numeric_date(value)
        if number is None:
            return refused("pop_bad_claim", f"The attestation PoP {name} is not a number.")
        numbers[name] = float(number)
    iat, exp, nbf = numbers.get("iat"), numbers.get("exp"), numbers.get("nbf")
    if iat is None:
        if not legacy or exp is None:
            return refused("pop_missing_iat", "The attestation PoP must have an iat claim.")
        # -00...-02 without iat: a short exp stands in for it, which bounds the replay window.
        if exp > now + policy.pop_iat_max_future_seconds + policy.pop_iat_max_age_seconds:
            return refused("pop_lifetime_too_long", "The attestation PoP lifetime is too long.")
    else:
        window = iat_window(iat, now, policy.pop_iat_max_age_seconds,
                            policy.pop_iat_max_future_seconds)
        if window is not None:
            return refused("pop_iat_out_of_window",
                           "The attestation PoP is too old." if window == "too_old"
                           else "The attestation PoP iat is in the future.",
                           f"iat={iat} now={now:.3f}")
    skew = policy.pop_iat_max_future_seconds
    if exp is not None and past_exp(exp, now, skew):
        return refused("pop_expired", "The attestation PoP has expired.")
    if nbf is not None and before_nbf(nbf, now, skew):
        return refused("pop_not_yet_valid", "The attestation PoP is not valid yet.")
    return None
