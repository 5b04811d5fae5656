"""After authentication: the registered client's policy (grant types, bound tokens), what the
upstream is told about it, and its DPoP nonce setting."""


from __future__ import annotations

from sidecar import errors
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.errors import OAuthError


def check_client_policy(auth: AuthenticatedClient, grant_type: str, *, dpop_proof: bool,
                        certificate: bool) -> OAuthError | None:
    """The registered policy of a known client, once the grant type is known.

    - `grant_types` (RFC 7591 §2): another grant is `unauthorized_client` (RFC 6749 §5.2);
    - `dpop_bound_access_tokens` (RFC 9449 §5.2): a request without a DPoP proof is refused;
    - `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4): the tokens are to be
      bound to a certificate, so one must be presented.
    """
    client = auth.client
    if client is None:
        return None
    if not client.allows_grant(grant_type):
        return errors.unauthorized_client(
            "client.grant_not_allowed", "The client is not allowed to use this grant type.",
            f"grant_type {grant_type!r}")
    if client.dpop_bound_access_tokens and not dpop_proof:
        return errors.invalid_dpop_proof("client.dpop_required",
                                         "This client must send a DPoP proof.")
    if client.tls_client_certificate_bound_access_tokens and not certificate:
        return errors.invalid_request("client.certificate_required_for_binding",
                                      "This client must present a client certificate.")
    return None


def context_headers(auth: AuthenticatedClient) -> list[tuple[str, str]]:
    """Context headers (names without the prefix) that come from the client registry."""
    headers = [("Client-Authenticated", "true" if auth.authenticated else "false")]
    client = auth.client
    if client is None:
        return headers
    if client.access_token_duration is not None:
        headers.append(("Access-Token-Duration", str(client.access_token_duration)))
    if client.refresh_token_duration is not None:
        headers.append(("Refresh-Token-Duration", str(client.refresh_token_duration)))
    if client.properties is not None:
        headers.append(("Properties", client.properties))
    if client.jwt_at_claims is not None:
        headers.append(("JWT-AT-Claims", client.jwt_at_claims))
    return headers


def dpop_nonce_required(auth: AuthenticatedClient, default: bool) -> bool:
    """The client's `dpop_nonce_required` when it registered one, else the global setting."""
    client = auth.client
    if client is None or client.dpop_nonce_required is None:
        return default
    return client.dpop_nonce_required
