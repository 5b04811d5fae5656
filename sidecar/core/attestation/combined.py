"""Combined mode (§5.2, §7.3): the DPoP proof is the proof of possession of the attested key."""

from __future__ import annotations

from sidecar import errors
from sidecar.core.attestation.config import CHALLENGE_HEADER, AttestationPolicy
from sidecar.core.attestation.results import KEY_MISMATCH
from sidecar.core.dpop.policy import NONCE_HEADER
from sidecar.core.dpop.results import DpopProof
from sidecar.core.jose.keys import PublicKeyInfo
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError


def check_combined(proof: DpopProof, key: PublicKeyInfo, *, policy: AttestationPolicy,
                    now: float, dpop_nonces: WindowedHmac | None,
                    dpop_nonce_required: bool) -> OAuthError | None:
    """§5.2, §7.3: the DPoP key is the attested key (by RFC 7638 thumbprint, §7.3 rule 4);
    the DPoP `nonce` is the challenge (-10) or a DPoP nonce (-11: "combined mode now
    exclusively uses the DPoP nonce mechanism"): either is accepted."""
    if proof.jkt != key.thumbprint:
        return KEY_MISMATCH
    challenges = policy.challenges
    nonce = proof.nonce
    if nonce is None:
        if policy.challenge_required or dpop_nonce_required:
            return _use_dpop_nonce("dpop_nonce_missing", "A server-provided nonce is required "
                                   "in the DPoP proof.", challenges, dpop_nonces, now)
        return None
    if challenges is None and dpop_nonces is None:
        return None  # not ours: the upstream's affair, as in dpop.validate_proof
    if (challenges is not None and challenges.verify(nonce, now)) \
            or (dpop_nonces is not None and dpop_nonces.verify(nonce, now)):
        return None
    return _use_dpop_nonce("dpop_nonce_invalid", "The DPoP proof nonce is invalid or has "
                           "expired.", challenges, dpop_nonces, now)


def _use_dpop_nonce(reason: str, description: str, challenges: WindowedHmac | None,
                    dpop_nonces: WindowedHmac | None, now: float) -> OAuthError:
    """§7.4 (-11): use_dpop_nonce with a fresh DPoP-Nonce. The value is a challenge when
    challenges are on, so that a -10 client reading OAuth-Client-Attestation-Challenge and a
    -11 client reading DPoP-Nonce both retry with a nonce this module accepts."""
    issuer = challenges if challenges is not None else dpop_nonces
    if issuer is None:
        return errors.server_error("attestation.nonce_unconfigured", "The server is "
                                   "misconfigured.", "dpop nonce required without a secret")
    value = issuer.issue(now)
    error = errors.use_dpop_nonce(f"attestation.{reason}", description) \
        .with_headers((NONCE_HEADER, value))
    return error.with_headers((CHALLENGE_HEADER, value)) if challenges is not None else error
