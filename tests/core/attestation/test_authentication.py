"""The attestation among the client's credentials (sidecar.core.attestation.authentication;
RFC 6749 §2.3, draft §7.5, §7.6)."""

from __future__ import annotations

from dataclasses import replace

from sidecar.core.attestation.authentication import authenticate_with_attestation
from sidecar.core.attestation.config import (
    ATTEST_JWT_CLIENT_AUTH,
    ATTEST_JWT_CLIENT_AUTH_DPOP,
)
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.clients.model import Client, Registry
from sidecar.core.credentials import ClientCredentials
from sidecar.errors import OAuthError
from tests.core.attestation.support import attested


def registry(*clients: Client) -> Registry:
    return Registry({c.client_id: c for c in clients})


NONE = ClientCredentials(None, "none")
SECRET_POST = ClientCredentials("wallet-app", "client_secret_post", secret="s")


def test_attestation_alone_authenticates() -> None:
    assert authenticate_with_attestation(attested(), NONE, None) == \
        AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
    client = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    result = authenticate_with_attestation(attested(), ClientCredentials("wallet-app", "none"),
                                           registry(client))
    assert result == AuthenticatedClient(client, True, ATTEST_JWT_CLIENT_AUTH)
    dpop_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH_DPOP)
    assert isinstance(authenticate_with_attestation(attested(ATTEST_JWT_CLIENT_AUTH_DPOP), NONE,
                                                    registry(dpop_only)), AuthenticatedClient)


def expect(result: object, code: str, reason: str, status: int) -> None:
    assert isinstance(result, OAuthError), result
    assert (result.code, result.result_code, result.status) == \
        (code, f"attestation.{reason}", status)


def test_attestation_plus_another_method() -> None:
    client = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    expect(authenticate_with_attestation(attested(), SECRET_POST, registry(client)),
           "invalid_request", "multiple_methods", 400)
    expect(authenticate_with_attestation(attested(), SECRET_POST, None),
           "invalid_request", "multiple_methods", 400)
    basic = ClientCredentials("wallet-app", "client_secret_basic", secret="s", used_basic=True)
    expect(authenticate_with_attestation(attested(), basic, None),
           "invalid_request", "multiple_methods", 400)
    assertion = ClientCredentials("wallet-app", "private_key_jwt", assertion="a.b.c")
    expect(authenticate_with_attestation(attested(), assertion, None),
           "invalid_request", "multiple_methods", 400)


def test_attestation_as_an_additional_signal() -> None:
    """§7.6: registered as a signal, the attestation rides along the registered method."""
    client = Client("wallet-app", "client_secret_post", attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), SECRET_POST, registry(client)) is None
    public = Client("wallet-app", "none", attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), NONE, registry(public)) is None
    expect(authenticate_with_attestation(
        attested(), replace(SECRET_POST, client_id="other-app"), registry(client)),
        "invalid_client", "client_id_mismatch", 401)


def test_registered_method_and_unknown_clients() -> None:
    secret_client = Client("wallet-app", "client_secret_basic")
    expect(authenticate_with_attestation(attested(), NONE, registry(secret_client)),
           "invalid_client", "wrong_method", 401)
    dpop_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH_DPOP)
    expect(authenticate_with_attestation(attested(), NONE, registry(dpop_only)),
           "invalid_client", "wrong_method", 401)
    expect(authenticate_with_attestation(attested(), NONE, registry()),
           "invalid_client", "unregistered_client", 401)
    assert authenticate_with_attestation(attested(), NONE, registry(), unknown="forward") == \
        AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
    expect(authenticate_with_attestation(attested(), ClientCredentials("x", "none"), None),
           "invalid_client", "client_id_mismatch", 401)


def test_a_certificate_alone_is_a_method_only_for_tls_clients() -> None:
    certificate = ClientCredentials("wallet-app", "tls_client_auth")
    binding_only = Client("wallet-app", ATTEST_JWT_CLIENT_AUTH)
    assert isinstance(authenticate_with_attestation(attested(), certificate,
                                                    registry(binding_only)), AuthenticatedClient)
    tls = Client("wallet-app", "tls_client_auth")
    expect(authenticate_with_attestation(attested(), certificate, registry(tls)),
           "invalid_request", "multiple_methods", 400)
    signal = replace(tls, attestation_additional_signal=True)
    assert authenticate_with_attestation(attested(), certificate, registry(signal)) is None
