"""The binding chain end to end with an authorization server nobody here wrote (issue 17,
"End to end with the binding chain"): django-oauth-toolkit under gunicorn issues an opaque
bearer token through the sidecar's token side; its own protected view (`/api/hello`, Bearer
only: oauthlib reads no DPoP) is the API behind the sidecar's resource door. The token works
there only with its key: DOT, unchanged, now has sender-constrained tokens.

A token DOT issued without the sidecar has no binding: the resource side learns of it from
DOT's own introspection endpoint (the resource server's credentials, RFC 7662), and lets it
through as Bearer or not by `resource.bearer`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import requests
from requests_oauth2client import BearerToken, DPoPKey, DPoPToken, OAuth2Client

from tests.conftest import Sidecar, SidecarFactory
from tests.support.dot import DotServer
from tests.support.resource import ath
from tests.support.servers import free_port


async def dot_sidecar(sidecar_factory: SidecarFactory, dot: DotServer, tmp_path: Path,
                      **resource: Any) -> Sidecar:
    """The sidecar at its public URL in front of DOT's token endpoint, and in front of DOT's
    own protected view as the API; DOT's introspection endpoint as a token source."""
    credentials = tmp_path / "introspection.toml"
    credentials.write_text(f'client_id = "{dot.resource_server.client_id}"\n'
                           f'client_secret = "{dot.resource_server.client_secret}"\n')
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    return await sidecar_factory(
        dot.url, port=port,
        server={"token_path": "/o/token/", "public_token_endpoint": f"{origin}/o/token/"},
        resource={"enabled": True, "public_origin": origin, "prefixes": ["/api/"],
                  "upstream_url": dot.url, "introspection_url": dot.introspect_url,
                  "introspection_credentials_file": str(credentials), **resource})


def dpop_token(sidecar: Sidecar, dot: DotServer, key: DPoPKey) -> DPoPToken:
    client = OAuth2Client(sidecar.url + "/o/token/", client_id=dot.client.client_id,
                          client_secret=dot.client.client_secret,
                          testing=True)  # plain http on 127.0.0.1
    token = client.client_credentials(scope="read", dpop=True, dpop_key=key)
    assert isinstance(token, DPoPToken)
    return token


def bearer_token_from_dot(dot: DotServer) -> BearerToken:
    """Straight from DOT, the sidecar never seeing it: nothing recorded."""
    client = OAuth2Client(dot.token_url, client_id=dot.client.client_id,
                          client_secret=dot.client.client_secret, testing=True)
    return client.client_credentials(scope="read")


async def test_a_dot_token_works_at_dot_s_api_only_with_its_key(
        sidecar_factory: SidecarFactory, dot_server: DotServer, tmp_path: Path) -> None:
    sidecar = await dot_sidecar(sidecar_factory, dot_server, tmp_path)
    hello = sidecar.url + dot_server.hello_path
    key = DPoPKey.generate(alg="ES256")

    def flow() -> dict[str, requests.Response]:
        token = dpop_token(sidecar, dot_server, key)
        thief = DPoPKey.generate(alg="ES256")
        stolen_proof = thief.proof(htm="GET", htu=hello, ath=ath(token.access_token))
        return {
            "with its key": requests.get(hello, auth=token, timeout=10),
            "with another key": requests.get(hello, timeout=10, headers={
                "Authorization": f"DPoP {token.access_token}", "DPoP": str(stolen_proof)}),
            "as Bearer": requests.get(hello, auth=BearerToken(token.access_token),
                                      timeout=10),
            "as Bearer, straight to DOT": requests.get(
                dot_server.url + dot_server.hello_path,
                auth=BearerToken(token.access_token), timeout=10),
        }

    answers = await asyncio.to_thread(flow)
    # DOT's own view accepted the token the sidecar passed on as Bearer.
    assert answers["with its key"].status_code == 200, answers["with its key"].text
    assert answers["with its key"].json() == {"hello": "world",
                                              "client_id": dot_server.client.client_id,
                                              "scope": "read"}
    for name in ("with another key", "as Bearer"):
        assert answers[name].status_code == 401, name
        assert "invalid_" in answers[name].headers["WWW-Authenticate"], name
    # What the sidecar adds: DOT alone takes the token from anyone who holds it.
    assert answers["as Bearer, straight to DOT"].status_code == 200


async def test_a_token_dot_issued_alone_is_known_by_dot_s_introspection(
        sidecar_factory: SidecarFactory, dot_server: DotServer, tmp_path: Path) -> None:
    allow = await dot_sidecar(sidecar_factory, dot_server, tmp_path)
    deny = await dot_sidecar(sidecar_factory, dot_server, tmp_path, bearer="deny")

    def flow() -> dict[str, requests.Response]:
        token = bearer_token_from_dot(dot_server)
        return {
            "allow": requests.get(allow.url + dot_server.hello_path, auth=token, timeout=10),
            "deny": requests.get(deny.url + dot_server.hello_path, auth=token, timeout=10),
            "unknown": requests.get(allow.url + dot_server.hello_path,
                                    auth=BearerToken("not-a-dot-token"), timeout=10),
        }

    answers = await asyncio.to_thread(flow)
    assert answers["allow"].status_code == 200, answers["allow"].text
    assert answers["deny"].status_code == 401
    # A token DOT's introspection says is inactive is refused by the sidecar itself
    # (RFC 7662 §2.2), resource.bearer = "allow" or not: it never reaches DOT's view.
    assert answers["unknown"].status_code == 401
    assert 'error="invalid_token"' in answers["unknown"].headers["WWW-Authenticate"]
