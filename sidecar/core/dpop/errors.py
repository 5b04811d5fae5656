"""The refusals of a DPoP proof: `invalid_dpop_proof` (RFC 9449 §5), result codes
`dpop.<reason>`. Descriptions never quote the proof; details go to the log only."""

from __future__ import annotations

from typing import Final

from sidecar import errors
from sidecar.errors import OAuthError


def invalid(reason: str, description: str, detail: str = "") -> OAuthError:
    return errors.invalid_dpop_proof(f"dpop.{reason}", description, detail)


MISSING = invalid("missing", "A DPoP proof is required.")
MULTIPLE = invalid("multiple_headers", "More than one DPoP header was sent.")
TOO_LARGE = invalid("malformed", "The DPoP proof is too large.")
NOT_JWS = invalid("malformed", "The DPoP proof is not a compact JWS.")
BAD_HEADER = invalid("malformed", "The DPoP proof header is not a valid JSON object.")
BAD_PAYLOAD = invalid("malformed", "The DPoP proof payload is not a valid JSON object.")
BAD_TYP = invalid("bad_typ", "The DPoP proof typ must be dpop+jwt.")
CRIT = invalid("unsupported_crit", "The DPoP proof has critical header parameters.")
BAD_ALG = invalid("bad_alg", "The DPoP proof alg is not supported.")
ALG_KEY = invalid("bad_alg", "The DPoP proof alg does not match its jwk.")
NO_JWK = invalid("bad_jwk", "The DPoP proof header has no jwk object.")
BAD_SIGNATURE = invalid("bad_signature", "The DPoP proof signature is invalid.")
BAD_JTI = invalid("bad_jti", "The DPoP proof jti is not a valid identifier.")
BAD_IAT = invalid("bad_claim", "The DPoP proof iat is not a number.")
BAD_HTU = invalid("htu_mismatch", "The DPoP proof htu does not match this endpoint.")
BAD_HTM = invalid("htm_mismatch", "The DPoP proof htm does not match the request method.")
ATH = invalid("ath_present", "The DPoP proof must not carry ath at the token endpoint.")
NO_ATH = invalid("ath_missing", "The DPoP proof has no ath claim.")
BAD_ATH = invalid("ath_mismatch", "The DPoP proof ath does not match the access token.")
BAD_EXP = invalid("bad_claim", "The DPoP proof exp is not a number.")
BAD_NBF = invalid("bad_claim", "The DPoP proof nbf is not a number.")
EXPIRED = invalid("expired", "The DPoP proof has expired.")
NOT_YET_VALID = invalid("not_yet_valid", "The DPoP proof is not valid yet.")
WINDOW_DESCRIPTIONS: Final = {"too_old": "The DPoP proof is too old.",
                              "in_future": "The DPoP proof iat is in the future."}
