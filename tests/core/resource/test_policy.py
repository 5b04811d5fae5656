"""sidecar.core.resource.policy: built from [resource], refused with the key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.policy import Policy
from sidecar.core.resource.policy import NONCE_PURPOSE, ResourcePolicy
from sidecar.settings import ConfigError, settings_from_mapping
from tests.support.resource import resource_settings

BASE = {"server": {"public_token_endpoint": "https://as.example.com/token"},
        "upstream": {"url": "http://127.0.0.1:9000"}}


def test_the_policy_is_part_of_the_sidecar_policy_only_when_enabled() -> None:
    assert Policy.from_settings(settings_from_mapping(BASE, {}), LOCAL_FILES).resource is None
    settings = settings_from_mapping(
        {**BASE, "resource": resource_settings("http://127.0.0.1:9100",
                                               public_origin="https://API.example.com:443/")},
        {})
    resource = Policy.from_settings(settings, LOCAL_FILES).resource
    assert isinstance(resource, ResourcePolicy)
    assert resource.origin == "https://api.example.com"
    assert resource.algs == "ES256 Ed25519 EdDSA PS256 RS256"
    assert (resource.bearer_allowed, resource.nonce_required) == (True, False)


def test_nonces_from_the_shared_secret_are_their_own(tmp_path: Path) -> None:
    shared = tmp_path / "dpop.secret"
    shared.write_text("s" * 40)
    settings = settings_from_mapping({
        **BASE, "dpop": {"nonce_secret_file": str(shared)},
        "resource": resource_settings("http://127.0.0.1:9100", nonce_required=True)}, {})
    policy = Policy.from_settings(settings, LOCAL_FILES)
    assert policy.resource is not None and policy.resource.nonces is not None
    assert policy.resource.nonces.purpose == NONCE_PURPOSE
    assert policy.nonces is not None
    # A token-endpoint nonce is no resource nonce.
    assert not policy.resource.nonces.verify(policy.nonces.issue(0.0), 0.0)


def test_an_unreadable_nonce_secret_names_its_key(tmp_path: Path) -> None:
    settings = settings_from_mapping({
        **BASE, "resource": resource_settings(
            "http://127.0.0.1:9100", nonce_required=True,
            nonce_secret_file=str(tmp_path / "missing"))}, {})
    with pytest.raises(ConfigError) as raised:
        ResourcePolicy.from_settings(settings, LOCAL_FILES)
    assert raised.value.problems[0].startswith("resource.nonce_secret_file: cannot read")
