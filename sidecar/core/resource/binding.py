"""Is the token presented the way it is bound? RFC 9449 §7.1 (the DPoP scheme, the proof's
key equal to `cnf.jkt`, a bound token never as Bearer), RFC 8705 §3 (the presented
certificate's `x5t#S256` equal to `cnf["x5t#S256"]`), RFC 6750 §3.1 (`insufficient_scope`).

`check_binding` is one function over the facts a source gave (or None when no source knew
the token) and what the request presented; it returns the refusal, or None.
"""

from __future__ import annotations

import dataclasses
import hmac
from typing import Final

from sidecar import errors
from sidecar.core.dpop.results import DpopProof
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.resource.request import Scheme
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.errors import OAuthError

UNKNOWN: Final = errors.invalid_token(
    "resource.unknown_token", "The access token is unknown, inactive or cannot be verified.")
EXPIRED: Final = errors.invalid_token("resource.expired_token", "The access token has expired.")
BOUND_AS_BEARER: Final = errors.invalid_token(
    "resource.bound_token_as_bearer",
    "The access token is DPoP-bound and must be presented with the DPoP scheme.")
NOT_DPOP_BOUND: Final = errors.invalid_token(
    "resource.token_not_dpop_bound", "The access token is not bound to a DPoP key.")
# RFC 9449 §7.1: a protected resource answers invalid_dpop_proof with 401.
KEY_MISMATCH: Final = dataclasses.replace(errors.invalid_dpop_proof(
    "resource.key_mismatch", "The DPoP proof is not signed with the key the token is bound to."),
    status=401)
NO_CERTIFICATE: Final = errors.invalid_token(
    "resource.certificate_missing",
    "The access token is certificate-bound and no client certificate was presented.")
CERT_MISMATCH: Final = errors.invalid_token(
    "resource.certificate_mismatch",
    "The access token is bound to another client certificate.")
BEARER_REFUSED: Final = errors.invalid_token(
    "resource.bearer_refused", "Only sender-constrained access tokens are accepted.")
INSUFFICIENT_SCOPE: Final = errors.insufficient_scope(
    "resource.insufficient_scope", "The access token does not have the required scope.")


def check_binding(facts: TokenFacts | None, *, scheme: Scheme, proof: DpopProof | None,
                  certificate: ClientCertificate | None, bearer_allowed: bool,
                  now: float) -> OAuthError | None:
    if facts is None:
        # Nobody vouches for the token: a DPoP request cannot be checked against a key, a
        # Bearer one is the API's affair when unbound tokens may pass (resource.bearer).
        return None if scheme == "Bearer" and bearer_allowed else UNKNOWN
    if facts.expires_at and facts.expires_at <= now:
        return EXPIRED.with_detail(f"exp={facts.expires_at} now={now:.0f}")
    if facts.jkt is not None:
        if scheme == "Bearer":  # RFC 9449 §7.1: a DPoP-bound token never as Bearer
            return BOUND_AS_BEARER.with_detail(f"source={facts.source}")
        assert proof is not None  # the DPoP scheme is only read with a valid proof
        if not hmac.compare_digest(proof.jkt, facts.jkt):
            return KEY_MISMATCH.with_detail(f"proof jkt={proof.jkt} bound jkt={facts.jkt}")
    elif scheme == "DPoP":
        return NOT_DPOP_BOUND.with_detail(f"source={facts.source}")
    if facts.x5t_s256 is not None:  # RFC 8705 §3: the certificate the token is bound to
        if certificate is None:
            return NO_CERTIFICATE
        if not hmac.compare_digest(certificate.x5t_s256, facts.x5t_s256):
            return CERT_MISMATCH.with_detail(
                f"presented={certificate.x5t_s256} bound={facts.x5t_s256}")
    if not facts.is_bound and not bearer_allowed:
        return BEARER_REFUSED
    return None


def check_scope(facts: TokenFacts | None, required: tuple[str, ...]) -> OAuthError | None:
    """RFC 6750 §3.1: every required scope must be granted. A token whose scope no source
    knows is refused too: a scope that cannot be read is not granted."""
    if not required:
        return None
    granted = set(facts.scope.split()) if facts is not None else set()
    missing = [scope for scope in required if scope not in granted]
    if missing:
        return INSUFFICIENT_SCOPE.with_detail(f"missing={' '.join(missing)}")
    return None
