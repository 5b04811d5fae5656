"""Authorization server metadata (RFC 8414 §2, OpenID Connect Discovery §3) that says what the
sidecar enforces in front of the upstream.

The upstream's document passes through with the fields the sidecar is the authority for
written in (it refuses what is not listed, so the upstream's own list would mislead a
client); every other field stays as the upstream wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sidecar import fast_json
from sidecar.core.policy import Policy
from sidecar.settings import Settings

# Methods only the sidecar authenticates: the upstream cannot list them itself.
_SIDECAR_ONLY_METHODS = ("attest_jwt_client_auth",)
# RFC 8414 §3 and its §3.1 path-suffixed form; OpenID Connect Discovery §4 (issuer path first).
OAUTH_METADATA_PATH = "/.well-known/oauth-authorization-server"
OPENID_METADATA_PATH = "/.well-known/openid-configuration"


def is_metadata_path(path: str) -> bool:
    return (path == OAUTH_METADATA_PATH or path.startswith(OAUTH_METADATA_PATH + "/")
            or path.endswith(OPENID_METADATA_PATH))


@dataclass(frozen=True, slots=True)
class Enforced:
    """What the sidecar enforces, built once from the settings. None: the upstream decides,
    and its value (if any) stays."""

    dpop_signing_algs: tuple[str, ...]
    auth_methods: tuple[str, ...] | None = None  # with a client registry
    auth_signing_algs: tuple[str, ...] | None = None  # with a client registry
    certificate_bound_tokens: bool = False  # RFC 8705 §3.3: certificates are read and bound
    attestation_algs: tuple[str, ...] | None = None  # the attestation draft, when on
    attestation_challenge_endpoint: str | None = None

    def fields(self) -> dict[str, Any]:
        """The members this sidecar writes into a metadata document."""
        written: dict[str, Any] = {
            "dpop_signing_alg_values_supported": list(self.dpop_signing_algs)}
        if self.auth_methods is not None:
            written["token_endpoint_auth_methods_supported"] = list(self.auth_methods)
        if self.auth_signing_algs is not None:
            written["token_endpoint_auth_signing_alg_values_supported"] = list(
                self.auth_signing_algs)
        if self.certificate_bound_tokens:
            written["tls_client_certificate_bound_access_tokens"] = True
        if self.attestation_algs is not None:
            written["client_attestation_signing_alg_values_supported"] = list(
                self.attestation_algs)
            written["client_attestation_pop_signing_alg_values_supported"] = list(
                self.attestation_algs)
        if self.attestation_challenge_endpoint:
            written["attestation_challenge_endpoint"] = self.attestation_challenge_endpoint
        return written


def augment(document: dict[str, Any], enforced: Enforced) -> tuple[dict[str, Any], list[str]]:
    """The document with the enforced fields written in, and the names that changed."""
    changed = []
    out = dict(document)
    for name, value in enforced.fields().items():
        if out.get(name) != value:
            out[name] = value
            changed.append(name)
    return out, changed


def metadata_document(body: bytes) -> dict[str, Any] | None:
    """The upstream's document as a JSON object, or None (it then passes unchanged)."""
    return fast_json.loads_object(body)


def enforced_fields(settings: Settings, policy: Policy) -> Enforced:
    """What this configuration enforces, as metadata (also `token-sidecar metadata`)."""
    registry = policy.registry
    attestation = policy.attestation
    methods: tuple[str, ...] | None = None
    signing_algs: tuple[str, ...] | None = None
    if registry is not None:
        methods = tuple(sorted({c.token_endpoint_auth_method for c in registry}))
        signing_algs = tuple(settings.clients.assertion_algorithms)
    if attestation is not None:
        methods = tuple(sorted({*(methods or ()), *_SIDECAR_ONLY_METHODS}))
    challenge = None
    if attestation is not None and attestation.challenges is not None:
        origin = urlsplit(settings.server.public_token_endpoint)
        challenge = f"{origin.scheme}://{origin.netloc}{attestation.challenge_path}"
    return Enforced(
        dpop_signing_algs=tuple(a for a in settings.dpop.algorithms
                                if a in policy.dpop.algorithms),
        auth_methods=methods,
        auth_signing_algs=signing_algs,
        certificate_bound_tokens=bool(settings.trust.client_cert_header
                                      and settings.trust.trusted_proxies),
        attestation_algs=tuple(sorted(attestation.algorithms)) if attestation else None,
        attestation_challenge_endpoint=challenge,
    )
