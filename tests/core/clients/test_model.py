"""The registered client (sidecar.core.clients.model): what a client that leaves a key out
of its `[[clients]]` table may do."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.client_authentication.client_policy import dpop_nonce_required
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.clients.model import Client


def bare_client(tmp_path: Path) -> Client:
    registry = registry_from_mapping(
        {"clients": [{"client_id": "x", "token_endpoint_auth_method": "none"}]}, tmp_path,
        LOCAL_FILES)
    client = registry.get("x")
    assert client is not None
    return client


def test_without_grant_types_only_authorization_code_is_allowed(tmp_path: Path) -> None:
    # RFC 7591 §2: "If omitted, the default is that the client will use only the
    # authorization_code Grant Type."
    client = bare_client(tmp_path)
    assert client.allows_grant("authorization_code")
    for other in ("refresh_token", "client_credentials", "password",
                  "urn:ietf:params:oauth:grant-type:device_code"):
        assert not client.allows_grant(other), other


@pytest.mark.parametrize("default", [True, False])
def test_without_dpop_nonce_required_the_global_setting_applies(tmp_path: Path,
                                                                default: bool) -> None:
    client = bare_client(tmp_path)
    assert dpop_nonce_required(AuthenticatedClient(client, True, "none"), default) is default
    # A client that registered its own answer keeps it, whatever the global setting says.
    for own in (True, False):
        registered = replace(client, dpop_nonce_required=own)
        assert dpop_nonce_required(AuthenticatedClient(registered, True, "none"), default) is own
