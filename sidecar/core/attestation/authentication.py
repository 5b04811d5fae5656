"""The attestation among the client's credentials (RFC 6749 §2.3, draft §7.5, §7.6): the
client authentication itself, an additional signal, or a second method."""

from __future__ import annotations

from sidecar import errors
from sidecar.core.attestation.config import ATTEST_JWT_CLIENT_AUTH, ATTESTATION_METHODS
from sidecar.core.attestation.results import ID_MISMATCH, AttestedClient
from sidecar.core.client_authentication.policy import TLS_METHODS, AuthenticatedClient
from sidecar.core.clients.model import Client, Registry
from sidecar.core.credentials import ClientCredentials
from sidecar.errors import OAuthError


def authenticate_with_attestation(
    attested: AttestedClient, credentials: ClientCredentials, registry: Registry | None, *,
    unknown: str = "reject",
) -> AuthenticatedClient | OAuthError | None:
    """What the verified attestation means for client authentication:

    - an `AuthenticatedClient` (method `attest_jwt_client_auth`) when the attestation *is* the
      client authentication: no other method was presented and, with a registry, the client
      registered an attestation method (`attest_jwt_client_auth` accepts both modes,
      `attest_jwt_client_auth_dpop` only combined mode);
    - None when the attestation is an additional signal (§7.6) next to the method the client
      registered, which the caller authenticates as usual;
    - `invalid_request` for attestation plus another method, unless the registry marks the
      client `attestation_additional_signal`; `invalid_client` for a client id that is not the
      attested one, an unregistered client, or a client registered with another method.
    """
    client = registry.get(attested.client_id) if registry is not None else None
    if credentials.client_id is not None and credentials.client_id != attested.client_id:
        return ID_MISMATCH
    other = _other_method(credentials, client)
    signal = client is not None and client.attestation_additional_signal
    if other is not None:
        if not signal:
            return errors.invalid_request(
                "attestation.multiple_methods",
                "The request uses more than one client authentication method.",
                f"attestation and {other}")
        return None
    if registry is not None and client is None:
        if unknown == "forward":
            return AuthenticatedClient(None, True, ATTEST_JWT_CLIENT_AUTH)
        return errors.invalid_client("attestation.unregistered_client", "Client "
                                     "authentication failed.", "attested but not registered")
    if client is not None:
        registered = client.token_endpoint_auth_method
        if registered not in (ATTEST_JWT_CLIENT_AUTH, attested.mode):
            if signal and registered not in ATTESTATION_METHODS:
                return None
            return errors.invalid_client(
                "attestation.wrong_method", "The client used an authentication method that is "
                "not registered for it.", f"registered {registered}, presented {attested.mode}")
    return AuthenticatedClient(client, True, ATTEST_JWT_CLIENT_AUTH)


def _other_method(credentials: ClientCredentials, client: Client | None) -> str | None:
    method = credentials.method
    if method == "none":
        return None
    if method == "tls_client_auth" and credentials.secret is None \
            and credentials.assertion is None:
        # A certificate alone is a credential only for a client registered with a TLS method;
        # otherwise it is there to bind tokens (RFC 8705 §4).
        tls = client is not None and client.token_endpoint_auth_method in TLS_METHODS
        return method if tls else None
    return method
