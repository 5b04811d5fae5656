"""Real clients on API calls through the sidecar's inline resource door (issue 17, "Proof"):
requests-oauth2client's DPoP auth and oauth4webapi's protectedResourceRequest get their
tokens through the sidecar's token side and call the API with them; the same token as Bearer,
with another key, with a replayed proof or a wrong `ath` is refused with the challenge a
client acts on; in nonce mode the clients' own retry succeeds."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import requests_oauth2client as roc

from sidecar.core.jose.keys import thumbprint
from tests.conftest import Sidecar, SidecarFactory
from tests.support.node import npm_package, require_node
from tests.support.resource import ath
from tests.support.servers import RecordingUpstream, free_port

NONCE_SECRET = "a-nonce-secret-that-is-long-enough-0123456789"
OAUTH4WEBAPI_SCRIPT = Path(__file__).parents[1] / "support" / "oauth4webapi_resource.mjs"


@dataclass
class Door:
    sidecar: Sidecar

    @property
    def token_url(self) -> str:
        return self.sidecar.settings.server.public_token_endpoint

    @property
    def api_url(self) -> str:
        return self.sidecar.url + "/api/things?page=2"

    def client(self) -> roc.OAuth2Client:
        # testing=True only lifts the library's https-only rule for this loopback URL.
        return roc.OAuth2Client(self.token_url, client_id="spa", client_secret="s3cret",
                                testing=True)

    def dpop_token(self, key: roc.DPoPKey) -> roc.DPoPToken:
        token = self.client().client_credentials(scope="read", dpop=True, dpop_key=key)
        assert isinstance(token, roc.DPoPToken)
        return token


DoorFactory = Callable[..., Awaitable[Door]]


@pytest.fixture
def door(sidecar_factory: SidecarFactory, upstream: RecordingUpstream,
         tmp_path: Path) -> DoorFactory:
    """The sidecar at its public URL (a real client signs `htu` with the URL it calls): its
    token side in front of the recording upstream, its inline door in front of the same
    server as the API."""
    async def make(*, nonce: bool = False, **resource: Any) -> Door:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        sections: dict[str, dict[str, Any]] = {}
        if nonce:
            secret = tmp_path / "nonce"
            secret.write_text(NONCE_SECRET + "\n")
            sections["dpop"] = {"nonce_required": True, "nonce_secret_file": str(secret)}
            resource["nonce_required"] = True
        sidecar = await sidecar_factory(
            port=port, server={"public_token_endpoint": f"{origin}/token"},
            resource={"enabled": True, "public_origin": origin, "prefixes": ["/api/"],
                      "upstream_url": upstream.url, **resource}, **sections)
        # Each test its own access token: the binding is recorded per token.
        upstream.token_body = {**upstream.token_body, "access_token": "at-" + uuid.uuid4().hex}
        return Door(sidecar)

    return make


def challenge(response: requests.Response, scheme: str) -> str:
    values = response.raw.headers.getlist("WWW-Authenticate")
    found = [v for v in values if v.split(" ", 1)[0] == scheme]
    assert found, f"no {scheme} challenge in {values}"
    return found[0]


def proof_claims(proof: str | bytes) -> dict[str, Any]:
    text = proof.decode() if isinstance(proof, bytes) else proof
    payload = text.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims: dict[str, Any] = json.loads(raw)
    return claims


def api_calls(d: Door) -> list[Any]:
    return [r for r in d.sidecar.upstream.received if r.path.startswith("/api/")]


async def test_requests_oauth2client_calls_the_api_with_its_dpop_token(door: DoorFactory) -> None:
    d = await door()
    key = roc.DPoPKey.generate(alg="ES256")

    def flow() -> requests.Response:
        token = d.dpop_token(key)
        return requests.get(d.api_url, auth=token, timeout=10)

    response = await asyncio.to_thread(flow)
    assert response.status_code == 200, response.text
    [call] = api_calls(d)
    token = d.sidecar.upstream.token_body["access_token"]
    # The API reads Bearer as it always did, never sees the proof, and learns who called.
    assert call.headers["Authorization"] == f"Bearer {token}"
    assert "DPoP" not in call.headers
    assert call.context["X-Token-DPoP-JKT"] == thumbprint(key.public_jwk)
    assert call.context["X-Token-Client-Id"] == "spa"


async def test_the_same_token_as_bearer_is_refused(door: DoorFactory) -> None:
    d = await door()

    def flow() -> requests.Response:
        token = d.dpop_token(roc.DPoPKey.generate(alg="ES256"))
        return requests.get(d.api_url, auth=roc.BearerToken(token.access_token), timeout=10)

    response = await asyncio.to_thread(flow)
    assert response.status_code == 401
    assert 'error="invalid_token"' in challenge(response, "Bearer")  # RFC 9449 §7.1
    assert "algs=" in challenge(response, "DPoP")
    assert not api_calls(d)


async def test_the_token_with_another_key_is_refused(door: DoorFactory) -> None:
    d = await door()

    def flow() -> requests.Response:
        token = d.dpop_token(roc.DPoPKey.generate(alg="ES256"))
        # A thief's own key, a proof made by the library's own proof() for this call. (Not
        # through DPoPToken as auth: its response hook takes any DPoP 401 for a nonce
        # challenge and raises when there is no DPoP-Nonce.)
        thief = roc.DPoPKey.generate(alg="ES256")
        proof = thief.proof(htm="GET", htu=d.api_url, ath=ath(token.access_token))
        return requests.get(d.api_url, timeout=10, headers={
            "Authorization": f"DPoP {token.access_token}", "DPoP": str(proof)})

    response = await asyncio.to_thread(flow)
    assert response.status_code == 401
    dpop = challenge(response, "DPoP")
    assert 'error="invalid_dpop_proof"' in dpop or 'error="invalid_token"' in dpop
    assert 'algs="' in dpop
    assert not api_calls(d)


async def test_a_replayed_proof_is_refused(door: DoorFactory) -> None:
    d = await door()

    def flow() -> tuple[requests.Response, requests.Response]:
        token = d.dpop_token(roc.DPoPKey.generate(alg="ES256"))
        first = requests.get(d.api_url, auth=token, timeout=10)
        # The very request again, proof included, as an attacker who saw it would send it.
        again = requests.get(d.api_url, timeout=10, headers={
            "Authorization": first.request.headers["Authorization"],
            "DPoP": first.request.headers["DPoP"]})
        return first, again

    first, again = await asyncio.to_thread(flow)
    assert first.status_code == 200
    assert again.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenge(again, "DPoP")
    assert len(api_calls(d)) == 1


async def test_a_proof_with_a_wrong_ath_is_refused(door: DoorFactory) -> None:
    d = await door()
    key = roc.DPoPKey.generate(alg="ES256")

    def flow() -> requests.Response:
        token = d.dpop_token(key)
        proof = key.proof(htm="GET", htu=d.api_url, ath=ath("another-token"))
        return requests.get(d.api_url, timeout=10, headers={
            "Authorization": f"DPoP {token.access_token}", "DPoP": str(proof)})

    response = await asyncio.to_thread(flow)
    assert response.status_code == 401
    assert 'error="invalid_dpop_proof"' in challenge(response, "DPoP")
    assert not api_calls(d)


async def test_requests_oauth2client_retries_after_use_dpop_nonce(door: DoorFactory) -> None:
    d = await door(nonce=True)

    def flow() -> requests.Response:
        token = d.dpop_token(roc.DPoPKey.generate(alg="ES256"))
        return requests.get(d.api_url, auth=token, timeout=10)

    response = await asyncio.to_thread(flow)
    # RFC 9449 §9: the first call got 401 use_dpop_nonce with DPoP-Nonce, the library's
    # response hook signed a new proof with the nonce, and only that call reached the API.
    assert response.status_code == 200, response.text
    assert "nonce" in proof_claims(response.request.headers["DPoP"])
    assert len(api_calls(d)) == 1


async def test_a_call_without_the_nonce_is_challenged(door: DoorFactory) -> None:
    d = await door(nonce=True)
    key = roc.DPoPKey.generate(alg="ES256")

    def flow() -> requests.Response:
        token = d.dpop_token(key)
        proof = key.proof(htm="GET", htu=d.api_url, ath=ath(token.access_token), nonce=None)
        return requests.get(d.api_url, timeout=10, headers={
            "Authorization": f"DPoP {token.access_token}", "DPoP": str(proof)})

    response = await asyncio.to_thread(flow)
    assert response.status_code == 401
    assert 'error="use_dpop_nonce"' in challenge(response, "DPoP")
    assert response.headers["DPoP-Nonce"]
    assert not api_calls(d)


async def test_oauth4webapi_calls_the_api_with_its_ed25519_dpop_token(door: DoorFactory) -> None:
    """oauth4webapi's protectedResourceRequest with an Ed25519 key (alg "Ed25519"), in nonce
    mode: it gets the token and calls the API, each after its own use_dpop_nonce retry."""
    node = require_node(20)  # WebCrypto Ed25519
    package = npm_package("oauth4webapi@3", "oauth4webapi")
    d = await door(nonce=True)
    process = await asyncio.create_subprocess_exec(
        node, str(OAUTH4WEBAPI_SCRIPT), str(package / "build" / "index.js"), d.token_url,
        d.api_url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["token_type"].lower() == "dpop" and answer["status"] == 200
    assert answer["nonce_retries"] == 2  # once at the token endpoint, once at the API
    [call] = api_calls(d)
    jkt = thumbprint({k: answer["jwk"][k] for k in ("kty", "crv", "x")})
    assert call.context["X-Token-DPoP-JKT"] == jkt
    assert call.headers["Authorization"].startswith("Bearer ")
