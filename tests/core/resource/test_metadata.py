"""sidecar.core.resource.metadata: the RFC 9728 document."""

from __future__ import annotations

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.resource.metadata import METADATA_PATH, protected_resource_metadata
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.settings import settings_from_mapping
from tests.support.resource import resource_settings


def _policy(bearer: str) -> ResourcePolicy:
    return ResourcePolicy.from_settings(settings_from_mapping({
        "server": {"public_token_endpoint": "https://as.example.com/token"},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "resource": resource_settings("http://127.0.0.1:9100", bearer=bearer)}, {}), LOCAL_FILES)


def test_the_document_says_what_the_resource_side_enforces() -> None:
    assert METADATA_PATH == "/.well-known/oauth-protected-resource"
    document = protected_resource_metadata(_policy("deny"), resource="https://api.example.com/",
                                           issuer="https://as.example.com")
    assert document == {
        "resource": "https://api.example.com",
        "authorization_servers": ["https://as.example.com"],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["ES256", "Ed25519", "EdDSA", "PS256", "RS256"],
        "dpop_bound_access_tokens_required": True,
        "tls_client_certificate_bound_access_tokens": True,
    }
    assert protected_resource_metadata(
        _policy("allow"), resource="https://api.example.com",
        issuer="https://as.example.com")["dpop_bound_access_tokens_required"] is False
