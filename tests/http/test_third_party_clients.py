"""Real third-party OAuth clients against the sidecar (issue: DPoP "a real client")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import requests_oauth2client as roc

from sidecar.core.jose.keys import thumbprint
from tests.conftest import Sidecar, SidecarFactory
from tests.support.node import npm_package, require_node
from tests.support.servers import free_port

SECRET = "a-nonce-secret-that-is-long-enough-0123456789"


async def nonce_sidecar_at_its_public_url(sidecar_factory: SidecarFactory,
                                          tmp_path: Path) -> Sidecar:
    """Nonces required, and the public URL the sidecar's own: a real client signs the htu
    with the URL it calls."""
    secret_file = tmp_path / "nonce"
    secret_file.write_text(SECRET + "\n")
    port = free_port()
    return await sidecar_factory(
        port=port, server={"public_token_endpoint": f"http://127.0.0.1:{port}/token"},
        dpop={"nonce_required": True, "nonce_secret_file": str(secret_file)})


async def test_requests_oauth2client_gets_a_dpop_token_through_nonce_challenge(
        sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    sidecar = await nonce_sidecar_at_its_public_url(sidecar_factory, tmp_path)
    public = sidecar.settings.server.public_token_endpoint
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


OAUTH4WEBAPI_SCRIPT = Path(__file__).parents[1] / "support" / "oauth4webapi_dpop.mjs"


async def test_oauth4webapi_gets_an_ed25519_dpop_token_with_the_defaults(
        sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    """oauth4webapi signs Ed25519 proofs with alg "Ed25519" (RFC 9864): accepted by the
    default dpop.algorithms, through its own use_dpop_nonce retry."""
    node = require_node(20)  # WebCrypto Ed25519
    package = npm_package("oauth4webapi@3", "oauth4webapi")
    sidecar = await nonce_sidecar_at_its_public_url(sidecar_factory, tmp_path)
    public = sidecar.settings.server.public_token_endpoint
    process = await asyncio.create_subprocess_exec(
        node, str(OAUTH4WEBAPI_SCRIPT), str(package / "build" / "index.js"), public,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["token_type"].lower() == "dpop"
    assert answer["jwk"]["kty"] == "OKP" and answer["jwk"]["crv"] == "Ed25519"
    # The library retried by itself after use_dpop_nonce: one request reached the upstream.
    assert len(sidecar.upstream.received) == 1
    context = sidecar.upstream.last.context
    assert context["X-Token-DPoP-JKT"] == thumbprint(
        {k: answer["jwk"][k] for k in ("kty", "crv", "x")})
    assert context["X-Token-Client-Id"] == "spa"
