"""Authenticating the client of one token request with the method it registered and no other;
the secret methods (`client_secret_basic`, `client_secret_post`; RFC 6749 §2.3.1)."""


from __future__ import annotations

from sidecar import errors
from sidecar.core.client_authentication.assertions import check_assertion
from sidecar.core.client_authentication.certificates import check_pki_certificate, check_self_signed
from sidecar.core.client_authentication.policy import (
    AUTHENTICATION_FAILED,
    JWT_METHODS,
    SECRET_METHODS,
    TLS_METHODS,
    AuthenticatedClient,
    ClientAuthPolicy,
    Refusal,
)
from sidecar.core.clients.model import Client, Registry
from sidecar.core.clients.secret_policy import valid_secret_text
from sidecar.core.credentials import ClientCredentials, basic_challenge
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.errors import OAuthError
from sidecar.ports import JwksSource, SecretVerifier


def unidentified_client(credentials: ClientCredentials, realm: str) -> OAuthError:
    """A token request that names no client (RFC 6749 §3.2.1: confidential clients
    authenticate, public ones send client_id). Another Authorization scheme is not client
    authentication here; the client is told so, and which challenge would be."""
    scheme = credentials.other_scheme
    if scheme is None:
        return errors.invalid_client("client.unidentified",
                                     "The request does not identify the client.")
    return errors.invalid_client(
        "client.unidentified",
        f"The request does not identify the client: the Authorization header's {scheme} "
        "scheme is not client authentication at the token endpoint (use Basic, or send "
        "client_id).").with_headers(basic_challenge(realm))


async def authenticate(
    credentials: ClientCredentials, certificate: ClientCertificate | None, registry: Registry,
    *, policy: ClientAuthPolicy, now: float, jwks: JwksSource, secrets: SecretVerifier,
) -> AuthenticatedClient | OAuthError:
    """Authenticate the client of one token request; an `OAuthError` for every refusal.

    The assertion's `jti` is not burned here: it comes back as `AuthenticatedClient.replay`
    for the pipeline's last step (`BurnReplays`), with the DPoP `jti`, so that a request
    refused later (e.g. `use_dpop_nonce`, then retried with the same body) has not used its
    assertion up.
    """
    refuse = Refusal(policy, credentials.used_basic)
    client_id = credentials.client_id
    client = registry.get(client_id) if client_id is not None else None
    if client is None:
        if policy.unknown == "forward":
            return AuthenticatedClient(None, False, credentials.method)
        if client_id is None:
            return unidentified_client(credentials, policy.issuer)
        return refuse("unknown", AUTHENTICATION_FAILED,
                      f"client_id {client_id!r} is not registered")
    registered, presented = client.token_endpoint_auth_method, credentials.method
    if registered in TLS_METHODS and presented == "none":
        return refuse("certificate_required", "A client certificate is required.")
    if not _method_fits(registered, presented):
        return refuse("wrong_method", "The client used an authentication method that is not "
                      "registered for it.", f"registered {registered}, presented {presented}")
    if registered in JWT_METHODS:
        checked = await check_assertion(credentials, client, refuse, policy=policy, now=now,
                                         jwks=jwks)
        if isinstance(checked, OAuthError):
            return checked
        return AuthenticatedClient(client, True, registered, replay=checked)
    if registered in SECRET_METHODS:
        error = await _check_secret(credentials, client, secrets, refuse)
    elif registered == "tls_client_auth":
        error = check_pki_certificate(certificate, client, now, refuse)
    elif registered == "self_signed_tls_client_auth":
        error = await check_self_signed(certificate, client, jwks, refuse)
    else:  # "none": identified, not authenticated
        return AuthenticatedClient(client, False, registered)
    return error or AuthenticatedClient(client, True, registered)


def _method_fits(registered: str, presented: str) -> bool:
    if registered == presented:
        return True
    # With a certificate and only client_id, extraction says tls_client_auth: it cannot know
    # PKI from self-signed. A public client may present a certificate only to bind its tokens
    # (RFC 8705 §4), so for "none" the certificate is not a credential.
    return presented == "tls_client_auth" and (registered in TLS_METHODS or registered == "none")


async def _check_secret(credentials: ClientCredentials, client: Client, secrets: SecretVerifier,
                        refuse: Refusal) -> OAuthError | None:
    candidates = [c for c in credentials.secret_candidates if c and valid_secret_text(c)]
    if not candidates:
        return refuse("secret_mismatch", AUTHENTICATION_FAILED,
                      "empty secret or control characters")
    for candidate in candidates:
        if await secrets.verify(client, candidate):
            return None
    return refuse("secret_mismatch", AUTHENTICATION_FAILED)
