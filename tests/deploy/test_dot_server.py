"""django-oauth-toolkit under gunicorn, as the sidecar's tests will meet it: straight to DOT,
no sidecar in between.

What these pin down, because the binding chain (issue 16) builds on it:

- DOT issues opaque Bearer tokens, and still does when the request carries a DPoP proof;
- its introspection answer is `{"active", "scope", "exp", "client_id"}`, no `cnf`;
- an introspection caller authenticates with any registered client's credentials, or with
  a Bearer token that has the `introspection` scope;
- revocation answers 200 whoever asks, and revokes only the caller's own tokens;
- it reads a form body only with a Content-Length, and the LAST of duplicated parameters;
- its protected API knows the `Bearer` scheme only.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests_oauth2client import BearerToken, DPoPKey, OAuth2Client

from tests.support.dot import Credentials, DotServer

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def oauth_client(dot: DotServer, credentials: Credentials) -> OAuth2Client:
    return OAuth2Client(dot.token_url, client_id=credentials.client_id,
                        client_secret=credentials.client_secret,
                        introspection_endpoint=dot.introspect_url,
                        revocation_endpoint=dot.revoke_url,
                        testing=True)  # plain http on 127.0.0.1


@pytest.fixture
def client(dot_server: DotServer) -> OAuth2Client:
    return oauth_client(dot_server, dot_server.client)


@pytest.fixture
def resource_server(dot_server: DotServer) -> OAuth2Client:
    return oauth_client(dot_server, dot_server.resource_server)


@pytest.fixture
def token(client: OAuth2Client) -> BearerToken:
    return client.client_credentials(scope="read")


def introspect(dot: DotServer, data: Any, **kwargs: Any) -> requests.Response:
    return requests.post(dot.introspect_url, data=data, timeout=10, **kwargs)


# -- the token endpoint -----------------------------------------------------------------


def test_client_credentials_grant_issues_an_opaque_bearer_token(token: BearerToken) -> None:
    assert token.token_type == "Bearer"
    assert token.scope == "read"
    assert token.expires_at is not None
    assert token.access_token.count(".") == 0  # opaque, not a JWT with a cnf claim


def test_a_dpop_proof_is_ignored_and_the_token_is_bearer(dot_server: DotServer) -> None:
    """DOT knows no DPoP (RFC 9449 §5 would answer `token_type: DPoP`): it is the sidecar's."""
    proof = DPoPKey.generate().proof(htm="POST", htu=dot_server.token_url)
    response = requests.post(dot_server.token_url, data={"grant_type": "client_credentials"},
                             auth=dot_server.client.basic, headers={"DPoP": str(proof)},
                             timeout=10)
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


# -- introspection (RFC 7662) -----------------------------------------------------------


def test_introspection_answers_active_with_client_scope_exp_and_no_cnf(
        dot_server: DotServer, resource_server: OAuth2Client, token: BearerToken) -> None:
    answer = resource_server.introspect_token(token.access_token)
    assert sorted(answer) == ["active", "client_id", "exp", "scope"]  # no cnf, no token_type
    assert answer["active"] is True
    assert answer["client_id"] == dot_server.client.client_id
    assert answer["scope"] == "read"
    assert isinstance(answer["exp"], int)
    assert answer["exp"] > time.time()  # DOT's default lifetime is ten hours


def test_introspection_of_an_unknown_token_is_inactive(resource_server: OAuth2Client) -> None:
    assert resource_server.introspect_token("no-such-token") == {"active": False}


def test_introspection_refuses_an_unauthenticated_caller(dot_server: DotServer,
                                                         token: BearerToken) -> None:
    response = introspect(dot_server, {"token": token.access_token})
    assert response.status_code == 403
    assert response.content == b""  # a bare 403, not an OAuth error body


def test_introspection_refuses_a_bearer_token_without_the_introspection_scope(
        dot_server: DotServer, token: BearerToken) -> None:
    response = introspect(dot_server, {"token": token.access_token},
                          headers={"Authorization": f"Bearer {token.access_token}"})
    assert response.status_code == 403


def test_introspection_accepts_a_bearer_token_with_the_introspection_scope(
        dot_server: DotServer, resource_server: OAuth2Client, token: BearerToken) -> None:
    caller = resource_server.client_credentials(scope="introspection")
    response = introspect(dot_server, {"token": token.access_token},
                          headers={"Authorization": f"Bearer {caller.access_token}"})
    assert response.status_code == 200
    assert response.json()["active"] is True


def test_introspection_accepts_any_registered_clients_credentials(
        dot_server: DotServer, token: BearerToken) -> None:
    """DOT does not keep introspection to resource servers: the client itself may call it."""
    response = introspect(dot_server, {"token": token.access_token}, auth=dot_server.client.basic)
    assert response.status_code == 200
    assert response.json()["client_id"] == dot_server.client.client_id


def test_introspection_reads_a_form_body_sent_with_content_length(
        dot_server: DotServer, token: BearerToken) -> None:
    request = requests.Request("POST", dot_server.introspect_url,
                               data={"token": token.access_token},
                               auth=dot_server.resource_server.basic).prepare()
    assert request.headers["Content-Length"] == str(len(f"token={token.access_token}"))
    with requests.Session() as session:
        response = session.send(request, timeout=10)
    assert response.status_code == 200
    assert response.json()["active"] is True


def test_introspection_does_not_read_a_chunked_body(dot_server: DotServer,
                                                    token: BearerToken) -> None:
    """Django reads a body only as long as its Content-Length: a proxy in front of DOT must
    forward form bodies with one (the hardening issue's pass-through framing)."""

    def chunks() -> Iterator[bytes]:
        yield b"token=" + token.access_token.encode()

    response = introspect(dot_server, chunks(), headers=FORM,
                          auth=dot_server.resource_server.basic)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request",
                               "error_description": "Token parameter is missing."}


def test_introspection_of_a_duplicated_token_reads_the_last(dot_server: DotServer,
                                                            token: BearerToken) -> None:
    """Django's QueryDict.get() takes the last value: a proxy that read the first one would
    decide about another token than DOT answers for (why the sidecar refuses duplicates)."""
    first_real = introspect(dot_server, [("token", token.access_token), ("token", "other")],
                            auth=dot_server.resource_server.basic)
    last_real = introspect(dot_server, [("token", "other"), ("token", token.access_token)],
                           auth=dot_server.resource_server.basic)
    assert first_real.json() == {"active": False}
    assert last_real.json()["active"] is True


# -- revocation (RFC 7009) --------------------------------------------------------------


def test_revocation_by_the_owner_makes_the_token_inactive(
        client: OAuth2Client, resource_server: OAuth2Client, token: BearerToken) -> None:
    assert client.revoke_access_token(token.access_token) is True
    assert resource_server.introspect_token(token.access_token) == {"active": False}


def test_revocation_by_another_client_answers_200_and_the_token_stays_active(
        dot_server: DotServer, resource_server: OAuth2Client, token: BearerToken) -> None:
    """RFC 7009 §2.1: only the client the token was issued to may revoke it; DOT still
    answers 200 (§2.2). A 200 from DOT therefore does not mean the token is gone."""
    response = requests.post(dot_server.revoke_url, data={"token": token.access_token},
                             auth=dot_server.resource_server.basic, timeout=10)
    assert response.status_code == 200
    assert resource_server.introspect_token(token.access_token)["active"] is True


# -- the protected API ------------------------------------------------------------------


def test_the_api_accepts_the_token_as_bearer(dot_server: DotServer, token: BearerToken) -> None:
    response = requests.get(dot_server.url + dot_server.hello_path, timeout=10,
                            headers={"Authorization": f"Bearer {token.access_token}"})
    assert response.status_code == 200
    assert response.json() == {"hello": "world", "client_id": dot_server.client.client_id,
                               "scope": "read"}


def test_the_api_refuses_the_dpop_scheme(dot_server: DotServer, token: BearerToken) -> None:
    """DOT reads `Authorization: Bearer` only (RFC 6750); `DPoP` (RFC 9449 §7.1) is unknown."""
    response = requests.get(dot_server.url + dot_server.hello_path, timeout=10,
                            headers={"Authorization": f"DPoP {token.access_token}"})
    assert response.status_code == 403


# -- discovery --------------------------------------------------------------------------


def test_rfc8414_metadata_names_the_endpoints(dot_server: DotServer) -> None:
    response = requests.get(dot_server.url + dot_server.metadata_path, timeout=10)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == dot_server.url
    assert metadata["token_endpoint"] == dot_server.token_url
    assert metadata["introspection_endpoint"] == dot_server.introspect_url
    assert metadata["revocation_endpoint"] == dot_server.revoke_url
    assert "dpop_signing_alg_values_supported" not in metadata


def test_openid_configuration_is_served(dot_server: DotServer) -> None:
    response = requests.get(dot_server.url + dot_server.openid_configuration_path, timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == dot_server.url
    assert document["token_endpoint"] == dot_server.token_url
    assert "RS256" in document["id_token_signing_alg_values_supported"]


# -- the fixture itself -----------------------------------------------------------------


def test_stop_ends_gunicorn_and_removes_its_directory() -> None:
    server = DotServer(workers=1)
    server.start()
    directory, port = server.directory, server.port
    server.stop()
    assert not directory.exists()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    with pytest.raises(ConnectionRefusedError):
        connection.request("GET", server.metadata_path)
    connection.close()
