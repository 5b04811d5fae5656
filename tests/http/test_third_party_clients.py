"""Real third-party OAuth clients against the sidecar (issue: DPoP "a real client")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import requests_oauth2client as roc

from sidecar.core.jwk import thumbprint
from tests.conftest import SidecarFactory
from tests.support.servers import free_port

SECRET = "a-nonce-secret-that-is-long-enough-0123456789"


async def test_requests_oauth2client_gets_a_dpop_token_through_nonce_challenge(
        sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    secret_file = tmp_path / "nonce"
    secret_file.write_text(SECRET + "\n")
    port = free_port()
    public = f"http://127.0.0.1:{port}/token"
    sidecar = await sidecar_factory(
        port=port, server={"public_token_endpoint": public},
        dpop={"nonce_required": True, "nonce_secret_file": str(secret_file)})
    key = roc.DPoPKey.generate(alg="ES256")

    def obtain() -> roc.BearerToken:
        # testing=True only lifts the library's https-only rule for this loopback URL.
        client = roc.OAuth2Client(public, client_id="spa", client_secret="s3cret",
                                  testing=True)
        return client.client_credentials(scope="read", dpop=True, dpop_key=key)

    token = await asyncio.to_thread(obtain)
    assert isinstance(token, roc.DPoPToken)
    assert token.token_type == "DPoP"
    # The client retried by itself after use_dpop_nonce: one request reached the upstream.
    assert len(sidecar.upstream.received) == 1
    context = sidecar.upstream.last.context
    assert context["X-Token-DPoP-JKT"] == thumbprint(key.public_jwk)
    assert context["X-Token-Client-Id"] == "spa"
