"""The policy built from the settings (sidecar.core.client_authentication.policy)."""

from __future__ import annotations

from sidecar.core.client_authentication.policy import ClientAuthPolicy
from sidecar.settings import settings_from_mapping
from tests.core.client_authentication.support import ENDPOINT, ISSUER


def test_policy_from_settings() -> None:
    settings = settings_from_mapping({
        "server": {"public_token_endpoint": ENDPOINT},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "clients": {"unknown": "forward", "assertion_audiences": "issuer_or_endpoint",
                    "assertion_leeway_seconds": 5, "assertion_algorithms": ["ES256", "HS256"]},
    }, {})
    policy = ClientAuthPolicy.from_settings(settings)
    assert (policy.issuer, policy.token_endpoint, policy.unknown) == (ISSUER, ENDPOINT, "forward")
    assert policy.audiences == frozenset({ISSUER, ENDPOINT}) and policy.leeway_seconds == 5
    assert policy.assertion_algorithms == frozenset({"ES256", "HS256"})
