"""The README's worked example (examples/decision_api_token_view.py) works: an authorization
server that calls the decision API gives a real client (requests-oauth2client) a DPoP-bound
token through a nonce challenge, and refuses what the sidecar refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests_oauth2client as roc
from aiohttp import web

from examples.decision_api_token_view import ISSUED, build
from sidecar.core.jose.keys import thumbprint
from sidecar.http.app import build_app
from sidecar.http.decision_api import ApiKeys, build_api_app
from tests.conftest import make_settings
from tests.support.servers import free_port, start_app

API_KEY = "an-api-key-that-is-long-enough-0123456789"
NONCE_SECRET = "a-nonce-secret-that-is-long-enough-0123456789"
REGISTRY = """
[[clients]]
client_id = "app"
token_endpoint_auth_method = "client_secret_basic"
client_secret_file = "app.secret"
grant_types = ["client_credentials", "password"]
"""


@dataclass
class ExampleAs:
    token_endpoint: str
    app: web.Application


@pytest.fixture
async def example_as(tmp_path: Path) -> AsyncIterator[ExampleAs]:
    (tmp_path / "clients.toml").write_text(REGISTRY)
    (tmp_path / "app.secret").write_text("app-secret\n")
    (tmp_path / "nonce").write_text(NONCE_SECRET + "\n")
    port = free_port()
    token_endpoint = f"http://127.0.0.1:{port}/token"
    # The sidecar proxies nothing here: the AS calls it. Its upstream is never used.
    settings = make_settings(
        "http://127.0.0.1:9", server={"public_token_endpoint": token_endpoint},
        clients={"registry_file": str(tmp_path / "clients.toml")},
        dpop={"nonce_required": True, "nonce_secret_file": str(tmp_path / "nonce")})
    token_app = build_app(settings)
    runners: list[web.AppRunner] = []
    runner, _ = await start_app(token_app)
    runners.append(runner)
    runner, api_url = await start_app(build_api_app(token_app, ApiKeys((API_KEY,)), 262144))
    runners.append(runner)
    app = build(api_url, API_KEY)
    runner, _ = await start_app(app, port=port)
    runners.append(runner)
    yield ExampleAs(token_endpoint, app)
    for runner in reversed(runners):
        await runner.cleanup()


def _client(example: ExampleAs, secret: str = "app-secret") -> roc.OAuth2Client:  # noqa: S107
    # testing=True only lifts the library's https-only rule for this loopback URL.
    return roc.OAuth2Client(example.token_endpoint, auth=roc.ClientSecretBasic("app", secret),
                            testing=True)


async def test_a_real_client_gets_a_dpop_bound_token_through_the_nonce_challenge(
        example_as: ExampleAs) -> None:
    key = roc.DPoPKey.generate(alg="ES256")
    token = await asyncio.to_thread(
        lambda: _client(example_as).client_credentials(scope="read", dpop=True, dpop_key=key))
    assert isinstance(token, roc.DPoPToken) and token.token_type == "DPoP"
    issued: dict[str, Any] = example_as.app[ISSUED][token.access_token]
    assert issued["cnf"] == {"jkt": thumbprint(key.public_jwk)}
    assert issued["client_id"] == "app"


async def test_a_wrong_secret_is_refused_as_the_sidecar_refuses_it(
        example_as: ExampleAs) -> None:
    with pytest.raises(roc.InvalidClient):
        await asyncio.to_thread(lambda: _client(example_as, "wrong").client_credentials())


async def test_the_password_grant_is_checked_by_the_as(example_as: ExampleAs) -> None:
    client = _client(example_as)
    token = await asyncio.to_thread(
        lambda: client.resource_owner_password("alice", "wonderland"))
    assert token.token_type == "Bearer"
    with pytest.raises(roc.InvalidGrant):
        await asyncio.to_thread(lambda: client.resource_owner_password("alice", "guess"))
