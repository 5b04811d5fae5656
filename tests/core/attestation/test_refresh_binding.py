"""Refresh tokens bound to a client instance (sidecar.core.attestation.refresh_binding; §10.3)."""

from __future__ import annotations

from sidecar.core.attestation.config import (
    ATTEST_JWT_CLIENT_AUTH,
)
from sidecar.core.attestation.refresh_binding import check_refresh_binding
from sidecar.core.attestation.results import AttestedClient
from sidecar.errors import OAuthError
from tests.core.attestation.support import ATTESTER, attested


def test_refresh_binding_to_the_instance_key() -> None:
    """§10.3: refreshed only with an attestation of the same instance key."""
    assert check_refresh_binding("jkt", attested()) is None
    for presented in (AttestedClient("wallet-app", ATTESTER, "other", ATTEST_JWT_CLIENT_AUTH),
                      None):
        error = check_refresh_binding("jkt", presented)
        assert isinstance(error, OAuthError)
        assert (error.code, error.result_code) == \
            ("invalid_grant", "binding.attestation_key_mismatch")
