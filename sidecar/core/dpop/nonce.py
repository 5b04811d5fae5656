"""The nonce of a proof (RFC 9449 §4.3 step 10, §8), checked last: see the package docstring
(`use_dpop_nonce` only for a proof valid in every other respect)."""

from __future__ import annotations

from collections.abc import Mapping

from sidecar import errors
from sidecar.core.dpop.policy import NONCE_HEADER
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError


def check_nonce(claims: Mapping[str, object], *, now: float, nonces: WindowedHmac | None,
                nonce_required: bool) -> OAuthError | None:
    if nonces is None:
        if nonce_required:
            return errors.server_error("dpop.nonce_unconfigured", "The server is misconfigured.",
                                       "dpop.nonce_required without dpop.nonce_secret_file")
        # A nonce the sidecar did not issue (e.g. the upstream's own) is the upstream's affair.
        return None
    if "nonce" not in claims:
        if nonce_required:
            return errors.use_dpop_nonce(
                "dpop.nonce_missing", "Authorization server requires nonce in DPoP proof."
            ).with_headers((NONCE_HEADER, nonces.issue(now)))
        return None
    if not nonces.verify(claims["nonce"], now):
        # §8: an invalid or expired nonce is answered like a missing one, with a fresh one.
        return errors.use_dpop_nonce(
            "dpop.nonce_invalid", "The DPoP proof nonce is invalid or has expired."
        ).with_headers((NONCE_HEADER, nonces.issue(now)))
    return None
