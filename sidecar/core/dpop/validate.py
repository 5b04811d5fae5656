"""`validate_proof`: the checks of RFC 9449 §4.3 in the order the package docstring explains."""

from __future__ import annotations

from sidecar.core.dpop import errors as e
from sidecar.core.dpop.claims import access_token_hash, check_claims
from sidecar.core.dpop.header import signed_header
from sidecar.core.dpop.nonce import check_nonce
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.dpop.results import DpopProof
from sidecar.core.jose.compact import strict_json_object
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError


def validate_proof(
    values: tuple[str, ...],
    *,
    method: str,
    policy: DpopPolicy,
    now: float,
    nonces: WindowedHmac | None,
    nonce_required: bool,
    htu_targets: frozenset[str] | None = None,
    access_token: str | None = None,
) -> DpopProof | OAuthError:
    """Check the `DPoP` header values of one request against RFC 9449 §4.3.

    `htu_targets` (normalised, see `htu.normalize_htu_targets`) replaces the policy's targets,
    for an endpoint other than the token endpoint (PAR, §10.1, or a protected resource).
    `access_token` is given by a resource server (§7): the proof must then carry its hash
    in `ath` (§4.3 step 12), and `dpop.reject_ath` does not apply. Never raises.
    """
    try:
        ath = None if access_token is None else access_token_hash(access_token)
        return _validate(values, method=method, policy=policy, now=now, nonces=nonces,
                         nonce_required=nonce_required,
                         targets=policy.htu_targets if htu_targets is None else htu_targets,
                         ath=ath)
    except Exception as exc:  # a bug must still be a 400, never a 500 or a crash
        return e.invalid("malformed", "The DPoP proof is malformed.",
                         f"unexpected {type(exc).__name__}")


def _validate(values: tuple[str, ...], *, method: str, policy: DpopPolicy, now: float,
              nonces: WindowedHmac | None, nonce_required: bool,
              targets: frozenset[str], ath: str | None) -> DpopProof | OAuthError:
    # §4.3 step 1: not more than one DPoP header (the caller decides when none is fine).
    if len(values) != 1:
        return e.MULTIPLE if values else e.MISSING
    proof = values[0]
    # §4.3 step 2: one well-formed JWT, in the JWS compact serialisation (§4.2).
    if not isinstance(proof, str):
        return e.NOT_JWS
    signed = signed_header(proof, policy)
    if isinstance(signed, OAuthError):
        return signed
    header, encoded_payload = signed
    claims = strict_json_object(encoded_payload)
    if claims is None:
        return e.BAD_PAYLOAD
    error = check_claims(claims, method=method, policy=policy, now=now, targets=targets,
                         ath=ath) \
        or check_nonce(claims, now=now, nonces=nonces, nonce_required=nonce_required)
    if error is not None:
        return error
    jkt, jti, iat, nonce = header.key.thumbprint, claims["jti"], claims["iat"], claims.get("nonce")
    assert isinstance(jti, str) and isinstance(iat, int | float)  # check_claims passed
    return DpopProof(jkt=jkt, jti=jti, iat=int(iat),
                     nonce=nonce if isinstance(nonce, str) else None,
                     replay_key=f"{jkt}:{jti}", replay_ttl_seconds=policy.replay_ttl_seconds)
