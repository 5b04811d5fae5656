"""Refresh tokens bound to a client instance key (§10.3)."""

from __future__ import annotations

from sidecar import errors
from sidecar.core.attestation.results import AttestedClient
from sidecar.errors import OAuthError


def check_refresh_binding(bound_jkt: str, attested: AttestedClient | None) -> OAuthError | None:
    """§10.3: a refresh token bound (`att:<jkt>`) to an instance key is refreshed only with an
    attestation of that same key."""
    if attested is None or attested.instance_jkt != bound_jkt:
        return errors.invalid_grant("binding.attestation_key_mismatch",
                                    "The refresh token is bound to another client instance.")
    return None
