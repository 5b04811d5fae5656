"""Client certificates from the front proxy, through real HTTP (README step 2, RFC 8705)."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote, unquote

import aiohttp
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import SidecarFactory
from tests.support.servers import raw_request

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = "grant_type=client_credentials&client_id=mtls-client"


@pytest.fixture(scope="module")
def leaf_pem() -> str:
    ca = trustme.CA()
    cert = ca.issue_cert("mtls-client.example")
    return cert.cert_chain_pems[0].bytes().decode()


def nginx_escaped(pem: str) -> str:
    # nginx's $ssl_client_escaped_cert escapes everything outside unreserved characters.
    return quote(pem, safe="")


def s256(pem: str) -> str:
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


async def test_certificate_from_a_trusted_proxy_reaches_the_upstream(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, leaf_pem: str) -> None:
    sidecar = await sidecar_factory()
    headers = {**FORM, "X-SSL-Client-Cert": nginx_escaped(leaf_pem)}
    async with client.post(sidecar.token_url, data=BODY, headers=headers) as response:
        assert response.status == 200
    context = sidecar.upstream.last.context
    assert context["X-Token-Client-Cert-S256"] == s256(leaf_pem)
    assert unquote(context["X-Token-Client-Cert"]) == leaf_pem
    assert context["X-Token-Client-Auth-Method"] == "tls_client_auth"


async def test_envoy_xfcc_format(client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
                                 leaf_pem: str) -> None:
    sidecar = await sidecar_factory(trust={"client_cert_header": "X-Forwarded-Client-Cert",
                                           "client_cert_format": "envoy-xfcc"})
    xfcc = (f'By=spiffe://cluster.local/ns/a/sa/b;Hash=abc;Cert="{quote(leaf_pem, safe="")}";'
            'Subject="CN=mtls-client,O=Example, Inc.";DNS=mtls-client.example')
    async with client.post(sidecar.token_url, data=BODY,
                           headers={**FORM, "X-Forwarded-Client-Cert": xfcc}) as response:
        assert response.status == 200
    assert sidecar.upstream.last.context["X-Token-Client-Cert-S256"] == s256(leaf_pem)


async def test_certificate_header_from_an_untrusted_peer_is_dropped(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, leaf_pem: str) -> None:
    sidecar = await sidecar_factory(trust={"trusted_proxies": ["10.0.0.0/8"]})
    headers = {**FORM, "X-SSL-Client-Cert": nginx_escaped(leaf_pem)}
    async with client.post(sidecar.token_url, data=BODY, headers=headers) as response:
        assert response.status == 200
    received = sidecar.upstream.last
    assert "X-SSL-Client-Cert" not in received.headers
    assert "X-Token-Client-Cert-S256" not in received.context
    assert received.context["X-Token-Client-Auth-Method"] == "none"
    # Not believed on other paths either.
    async with client.get(sidecar.url + "/userinfo", headers=headers) as response:
        assert response.status == 200
    assert "X-SSL-Client-Cert" not in sidecar.upstream.last.headers
    # Nor any other proxy's certificate header, configured or not: the upstream may read one.
    others = {"X-Forwarded-Client-Cert": "Cert=x", "Client-Cert": ":AAAA:",
              "X-Forwarded-Tls-Client-Cert": "AAAA", "X-Amzn-Mtls-Clientcert": "x"}
    async with client.post(sidecar.token_url, data=BODY, headers={**FORM, **others}) as r:
        assert r.status == 200
    assert not set(others) & set(sidecar.upstream.last.headers)


async def test_garbage_from_an_untrusted_peer_is_ignored(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(trust={"trusted_proxies": ["10.0.0.0/8"]})
    async with client.post(sidecar.token_url, data=BODY,
                           headers={**FORM, "X-SSL-Client-Cert": "garbage"}) as response:
        assert response.status == 200


@pytest.mark.parametrize("value", ["garbage", "-----BEGIN%20CERTIFICATE-----%0AAAAA",
                                   "%zz", "x" * 70000])
async def test_unparseable_header_from_a_trusted_proxy_is_invalid_request(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, value: str) -> None:
    sidecar = await sidecar_factory()
    async with client.post(sidecar.token_url, data=BODY,
                           headers={**FORM, "X-SSL-Client-Cert": value}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_request"
    assert sidecar.upstream.received == []


async def test_protocol_level_errors_are_oauth_json(sidecar_factory: SidecarFactory) -> None:
    """Requests aiohttp's parser refuses get the same JSON error (pins http/server.py)."""
    sidecar = await sidecar_factory()
    raw = (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\nContent-Type: b\r\n"
           b"Content-Length: 0\r\n\r\n")
    answer = await raw_request(sidecar.url, raw)
    assert answer.status == 400
    assert b"Content-Type: application/json" in answer.head
    assert answer.json()["error"] == "invalid_request"
