"""The binding chain end to end in front of an authorization server nobody here wrote:
django-oauth-toolkit under gunicorn, which knows no DPoP (tests/deploy/test_dot_server.py pins
that down). A real client (requests-oauth2client) gets a DPoP token through the sidecar; DOT's
own introspection endpoint, called through the sidecar, then answers with the proof's key."""

from __future__ import annotations

import asyncio
from typing import Any

import requests
from requests_oauth2client import DPoPKey, DPoPToken, OAuth2Client

from sidecar.core.jose.keys import thumbprint
from tests.conftest import Sidecar, SidecarFactory
from tests.support.dot import DotServer
from tests.support.servers import free_port


async def dot_sidecar(sidecar_factory: SidecarFactory, dot: DotServer) -> Sidecar:
    port = free_port()
    return await sidecar_factory(
        dot.url, port=port,
        server={"token_path": "/o/token/",
                "public_token_endpoint": f"http://127.0.0.1:{port}/o/token/"},
        introspection={"path": "/o/introspect/", "revocation_path": "/o/revoke_token/"})


def client_of(sidecar: Sidecar, dot: DotServer) -> OAuth2Client:
    return OAuth2Client(sidecar.url + "/o/token/", client_id=dot.client.client_id,
                        client_secret=dot.client.client_secret,
                        revocation_endpoint=sidecar.url + "/o/revoke_token/",
                        testing=True)  # plain http on 127.0.0.1


def introspect(url: str, dot: DotServer, token: str) -> dict[str, Any]:
    response = requests.post(url, data={"token": token}, auth=dot.resource_server.basic,
                             timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_a_dpop_token_from_dot_is_introspected_with_its_key(
        sidecar_factory: SidecarFactory, dot_server: DotServer) -> None:
    sidecar = await dot_sidecar(sidecar_factory, dot_server)
    key = DPoPKey.generate(alg="ES256")

    def flow() -> tuple[DPoPToken, dict[str, Any], dict[str, Any]]:
        token = client_of(sidecar, dot_server).client_credentials(
            scope="read", dpop=True, dpop_key=key)
        assert isinstance(token, DPoPToken)
        through = introspect(sidecar.url + "/o/introspect/", dot_server, token.access_token)
        direct = introspect(dot_server.introspect_url, dot_server, token.access_token)
        return token, through, direct

    token, through, direct = await asyncio.to_thread(flow)
    assert token.token_type == "DPoP"
    # DOT itself knows nothing of the key ...
    assert direct["active"] is True and "cnf" not in direct
    # ... the sidecar, in front of DOT's own endpoint, adds it and keeps every field of DOT's.
    assert through["cnf"] == {"jkt": thumbprint(key.public_jwk)}
    assert through["token_type"] == "DPoP"
    assert {k: v for k, v in through.items() if k not in ("cnf", "token_type")} == direct


async def test_revoked_through_the_sidecar_the_token_is_inactive_and_unbound(
        sidecar_factory: SidecarFactory, dot_server: DotServer) -> None:
    sidecar = await dot_sidecar(sidecar_factory, dot_server)

    def flow() -> dict[str, Any]:
        client = client_of(sidecar, dot_server)
        token = client.client_credentials(scope="read", dpop=True,
                                          dpop_key=DPoPKey.generate(alg="ES256"))
        assert introspect(sidecar.url + "/o/introspect/", dot_server,
                          token.access_token)["active"] is True
        client.revoke_access_token(token.access_token)
        return introspect(sidecar.url + "/o/introspect/", dot_server, token.access_token)

    answer = await asyncio.to_thread(flow)
    assert answer == {"active": False}


async def test_dot_s_metadata_says_what_the_sidecar_enforces(
        sidecar_factory: SidecarFactory, dot_server: DotServer) -> None:
    sidecar = await dot_sidecar(sidecar_factory, dot_server)
    path = "/.well-known/oauth-authorization-server"

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        direct = requests.get(dot_server.url + path, timeout=10).json()
        through = requests.get(sidecar.url + path, timeout=10).json()
        return direct, through

    direct, through = await asyncio.to_thread(both)
    assert "dpop_signing_alg_values_supported" not in direct
    assert through["dpop_signing_alg_values_supported"] == list(sidecar.settings.dpop.algorithms)
    assert {k: through[k] for k in direct} == direct


async def test_another_dot_client_revoking_leaves_the_binding(
        sidecar_factory: SidecarFactory, dot_server: DotServer) -> None:
    sidecar = await dot_sidecar(sidecar_factory, dot_server)
    key = DPoPKey.generate(alg="ES256")

    def flow() -> dict[str, Any]:
        token = client_of(sidecar, dot_server).client_credentials(
            scope="read", dpop=True, dpop_key=key)
        # DOT answers 200 to a client that may not revoke the token, and keeps it active.
        response = requests.post(sidecar.url + "/o/revoke_token/",
                                 data={"token": token.access_token},
                                 auth=dot_server.resource_server.basic, timeout=10)
        assert response.status_code == 200
        return introspect(sidecar.url + "/o/introspect/", dot_server, token.access_token)

    answer = await asyncio.to_thread(flow)
    assert answer["active"] is True
    assert answer["cnf"] == {"jkt": thumbprint(key.public_jwk)}
