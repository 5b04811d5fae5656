"""RFC 9728 protected resource metadata, served at `/.well-known/oauth-protected-resource`
of the inline origin: what a client needs to know to call the APIs behind the sidecar."""

from __future__ import annotations

from typing import Any, Final

from sidecar.core.resource.policy import ResourcePolicy

METADATA_PATH: Final = "/.well-known/oauth-protected-resource"  # RFC 9728 §3


def protected_resource_metadata(policy: ResourcePolicy, *, resource: str,
                                issuer: str) -> dict[str, Any]:
    """RFC 9728 §2. `resource` is `resource.public_origin` as configured: §3.3 wants it
    identical to the URL the document is fetched from, without the well-known suffix."""
    return {
        "resource": resource.rstrip("/"),
        "authorization_servers": [issuer],
        "bearer_methods_supported": ["header"],  # RFC 6750 §2.1 only: no body, no query
        "dpop_signing_alg_values_supported": sorted(policy.dpop.algorithms),
        # Unbound tokens as Bearer are refused: every token must be DPoP- (or
        # certificate-) bound. RFC 9728 §2 has no field for the certificate-only case.
        "dpop_bound_access_tokens_required": not policy.bearer_allowed,
        "tls_client_certificate_bound_access_tokens": True,  # RFC 8705 §3, checked here
    }
