"""Headers a client can forge, through real HTTP (raw sockets where a client library would
normalise the attack away): certificate and context headers in any spelling, duplicated
certificate headers, client addresses, and `Connection` lists."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp
import pytest
import trustme

from tests.conftest import Sidecar, SidecarFactory
from tests.support.servers import raw_request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = "grant_type=client_credentials&client_id=mtls-client"
UNTRUSTED = {"trust": {"trusted_proxies": ["10.0.0.0/8"]}}


def token_request(headers: list[tuple[str, str]], path: str = "/token",
                  body: str = BODY) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: as.example.com", "Connection: close",
             "Content-Type: application/x-www-form-urlencoded",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def get_request(headers: list[tuple[str, str]], path: str = "/userinfo") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: as.example.com", "Connection: close",
             *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.fixture(scope="module")
def cert_pems() -> tuple[str, str]:
    ca = trustme.CA()
    return (ca.issue_cert("attacker.example").cert_chain_pems[0].bytes().decode(),
            ca.issue_cert("victim.example").cert_chain_pems[0].bytes().decode())


FORGED_CERT_HEADERS = [
    "SSL_CLIENT_CERT", "SSL_CLIENT_CERT_CHAIN_0", "SSL_CLIENT_VERIFY",
    "SSL_CLIENT_S_DN", "X-SSL-Cert", "X_SSL_Client_Cert", "X-SSL-Client-Verify",
    "X-SSL-Client-S-DN", "X-SSL-Client-DN", "X-ARR-ClientCert", "MS-ASPNETCORE-CLIENTCERT",
    "X_Forwarded_Client_Cert",
    "X-Amzn-Mtls-Clientcert-Subject", "X-Amzn-Mtls-Clientcert-Issuer", "Client_Cert",
    "Cf-Client-Cert-Sha256", "X-Client-Cert-Present",
]


@pytest.mark.parametrize("name", FORGED_CERT_HEADERS)
async def test_certificate_headers_of_every_proxy_are_dropped_from_untrusted_peers(
        sidecar_factory: SidecarFactory, name: str) -> None:
    sidecar = await sidecar_factory(**UNTRUSTED)
    answer = await raw_request(sidecar.url, token_request([(name, "forged-cert")]))
    assert answer.status == 200
    assert "forged-cert" not in sidecar.upstream.last.headers.values()
    answer = await raw_request(sidecar.url, get_request([(name, "forged-cert")]))
    assert answer.status == 200
    assert "forged-cert" not in sidecar.upstream.last.headers.values()


async def test_drop_headers_adds_names_and_prefixes(sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(trust={"trusted_proxies": ["10.0.0.0/8"],
                                           "drop_headers": ["X-Device-Id", "X-Mesh-*"]})
    sent = [("X_Device_Id", "forged-1"), ("X-Mesh-Peer-Identity", "forged-2"), ("X-Kept", "k")]
    answer = await raw_request(sidecar.url, get_request(sent))
    assert answer.status == 200
    received = sidecar.upstream.last.headers
    assert not {"forged-1", "forged-2"} & set(received.values())
    assert received["X-Kept"] == "k"


@pytest.mark.parametrize("name", ["X_Token_Subject", "X-Token_Client_Cert_S256",
                                  "x_token_client_authenticated", "X_TOKEN-ACTION"])
async def test_underscore_spellings_of_context_headers_are_dropped_from_everyone(
        sidecar: Sidecar, name: str) -> None:
    # The default sidecar trusts 127.0.0.1: even a trusted proxy cannot speak as the sidecar.
    answer = await raw_request(sidecar.url, token_request([(name, "forged")]))
    assert answer.status == 200
    received = sidecar.upstream.last.headers
    assert "forged" not in received.values()
    assert received["X-Token-Action"] == "OK"
    answer = await raw_request(sidecar.url, get_request([(name, "forged")]))
    assert answer.status == 200
    assert "forged" not in sidecar.upstream.last.headers.values()


async def test_certificate_header_in_another_spelling_counts_once_from_a_trusted_proxy(
        sidecar: Sidecar, cert_pems: tuple[str, str]) -> None:
    """`X_SSL_Client_Cert` is the configured header to a WSGI upstream: together with
    `X-SSL-Client-Cert` it is a second certificate, never an unchecked extra."""
    attacker, victim = cert_pems
    sent = [("X_SSL_Client_Cert", quote(victim, safe="")),
            ("X-SSL-Client-Cert", quote(attacker, safe=""))]
    answer = await raw_request(sidecar.url, token_request(sent))
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"
    assert sidecar.upstream.received == []


@pytest.mark.parametrize("path", ["/token", "/userinfo"])
async def test_two_certificate_headers_from_a_trusted_proxy_are_invalid_request(
        sidecar: Sidecar, cert_pems: tuple[str, str], path: str) -> None:
    """A proxy that appends instead of replacing lets the client put a victim's public
    certificate first; neither is believed."""
    attacker, victim = cert_pems
    sent = [("X-SSL-Client-Cert", quote(victim, safe="")),
            ("X-SSL-Client-Cert", quote(attacker, safe=""))]
    request = token_request(sent, path=path) if path == "/token" else get_request(sent, path)
    answer = await raw_request(sidecar.url, request)
    assert answer.status == 400
    assert answer.json()["error"] == "invalid_request"
    assert b"Cache-Control: no-store" in answer.head
    assert sidecar.upstream.received == []


async def test_client_addresses_from_untrusted_peers_are_replaced_by_the_peer(
        sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(**UNTRUSTED)
    sent = [("X-Forwarded-For", "203.0.113.7"), ("X_Forwarded_For", "203.0.113.8"),
            ("Forwarded", "for=203.0.113.9"), ("X-Real-IP", "203.0.113.10"),
            ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"),
            ("True-Client-IP", "203.0.113.11"), ("CF-Connecting-IP", "203.0.113.12")]
    for request in (token_request(sent), get_request(sent)):
        answer = await raw_request(sidecar.url, request)
        assert answer.status == 200
        received = sidecar.upstream.last.headers
        assert received.getall("X-Forwarded-For") == ["127.0.0.1"]
        assert not {name for name, _ in sent if name != "X-Forwarded-For"} & set(received)


async def test_a_trusted_proxy_list_gets_the_peer_appended(sidecar: Sidecar) -> None:
    sent = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "198.51.100.1"),
            ("X-Real-IP", "203.0.113.7"), ("X-Forwarded-Proto", "https")]
    answer = await raw_request(sidecar.url, get_request(sent))
    assert answer.status == 200
    received = sidecar.upstream.last.headers
    assert received.getall("X-Forwarded-For") == ["203.0.113.7, 198.51.100.1, 127.0.0.1"]
    assert received["X-Real-IP"] == "203.0.113.7"
    assert received["X-Forwarded-Proto"] == "https"


@pytest.mark.parametrize("name", ["X-Original-URL", "X_Rewrite_URL"])
async def test_headers_that_override_the_request_target_are_dropped_from_everyone(
        sidecar: Sidecar, name: str) -> None:
    """Frameworks that route by X-Original-URL would send `/userinfo` to their token handler,
    past every check the sidecar makes on `/token` (even behind a trusted proxy)."""
    answer = await raw_request(sidecar.url, get_request([(name, "/token")]))
    assert answer.status == 200
    assert "/token" not in sidecar.upstream.last.headers.values()


@pytest.mark.parametrize("listed", ["Authorization", "authorization", "Content_Type",
                                    "X-Request-Id", "X-Forwarded-For"])
async def test_connection_cannot_remove_what_the_sidecar_read(
        client: aiohttp.ClientSession, sidecar: Sidecar, listed: str) -> None:
    headers = {**FORM, "Authorization": "Basic YmlsbGluZzpzM2NyZXQ=", "X-Request-Id": "r-1",
               "Connection": f"keep-alive, {listed}, X-Other", "X-Other": "hop"}
    async with client.post(sidecar.token_url, data="grant_type=client_credentials",
                           headers=headers) as response:
        assert response.status == 200
    received = sidecar.upstream.last.headers
    assert received["Authorization"] == headers["Authorization"]
    assert received["Content-Type"] == FORM["Content-Type"]
    assert received["X-Request-Id"] == "r-1"
    assert received["X-Forwarded-For"] == "127.0.0.1"
    assert "X-Other" not in received  # other listed headers are hop-by-hop, as before
    assert sidecar.upstream.last.context["X-Token-Client-Auth-Method"] == "client_secret_basic"


@pytest.mark.parametrize("name", ["OAuth_Client_Attestation", "OAuth-Client_Attestation-PoP",
                                  "Content_Type", "Content_Encoding", "X_Request_Id"])
async def test_other_spellings_of_headers_the_sidecar_reads_are_dropped(
        sidecar: Sidecar, name: str) -> None:
    """The sidecar checked `OAuth-Client-Attestation` (or found none); a WSGI upstream would
    read `OAuth_Client_Attestation` as that very header, unchecked."""
    answer = await raw_request(sidecar.url, token_request([(name, "forged")]))
    assert answer.status == 200
    assert "forged" not in sidecar.upstream.last.headers.values()
