"""The registered client (sidecar.core.clients.model)."""

from __future__ import annotations

from sidecar.core.clients.model import Client


def test_client_defaults() -> None:
    client = Client("x", "none")
    assert client.grant_types == ("authorization_code",)  # RFC 7591 §2
    assert not client.dpop_bound_access_tokens and client.dpop_nonce_required is None
