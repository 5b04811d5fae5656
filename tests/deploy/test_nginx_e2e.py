"""A real nginx, running deploy/nginx/token-sidecar.conf, in front of the sidecar.

Client --HTTPS (optionally mTLS)--> nginx --HTTP from 127.0.0.2--> sidecar --> recording
upstream. The sidecar trusts only 127.0.0.2/32 (the address nginx connects from, through
`proxy_bind`), so a client that talks to the sidecar directly, from 127.0.0.1, is not a
trusted proxy. Shown through real requests:

- an mTLS client's certificate crosses nginx, and its x5t#S256 (computed here, from the
  DER the client holds) reaches the upstream;
- a client without a certificate brings no certificate context;
- a certificate header the client writes itself is never believed: nginx replaces it (or,
  without a client certificate, sends none);
- the same forged header sent straight to the sidecar, from an untrusted address, is dropped;
- what nginx answers itself (the sidecar unreachable, a body over its limit) is OAuth JSON.
"""

from __future__ import annotations

import base64
import hashlib
import io
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import aiohttp
import pytest
import trustme

from tests.conftest import Sidecar, SidecarFactory
from tests.support import nginx as nginx_support
from tests.support.nginx import (
    Nginx,
    free_port,
    render_deploy_config,
    require_nginx,
    running_nginx,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BODY = "grant_type=client_credentials&client_id=mtls-client"
NGINX_SOURCE = "127.0.0.2"  # nginx's side of its connections to the sidecar (proxy_bind)
CERT_CONTEXT = ("X-Token-Client-Cert", "X-Token-Client-Cert-S256")


@dataclass(frozen=True)
class Pki:
    server_ca: trustme.CA
    server: trustme.LeafCert
    client: trustme.LeafCert  # the certificate a client really holds
    forged: trustme.LeafCert  # one a client names in a header without holding it

    def client_pem(self) -> str:
        return self.client.cert_chain_pems[0].bytes().decode()

    def forged_pem(self) -> str:
        return self.forged.cert_chain_pems[0].bytes().decode()


@pytest.fixture(scope="module")
def pki() -> Pki:
    server_ca = trustme.CA()
    client_ca = trustme.CA(organization_name="token-sidecar test clients")
    return Pki(server_ca=server_ca, server=server_ca.issue_cert("localhost", "127.0.0.1"),
               client=client_ca.issue_cert("mtls-client.example"),
               forged=trustme.CA().issue_cert("somebody-else.example"))


def x5t_s256(pem: str) -> str:
    """RFC 8705 §3.1, from the standard library only: base64url(SHA-256(DER)), no padding."""
    der = ssl.PEM_cert_to_DER_cert(pem)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


@dataclass
class Front:
    url: str  # https://127.0.0.1:<port>, nginx
    sidecar: Sidecar
    nginx: Nginx

    @property
    def token_url(self) -> str:
        return self.url + self.sidecar.settings.server.token_path


def server_files(pki: Pki, directory: Path) -> tuple[Path, Path]:
    """nginx's certificate chain and key, as files."""
    certificate, key = directory / "server.pem", directory / "server.key"
    certificate.write_bytes(b"".join(blob.bytes() for blob in pki.server.cert_chain_pems))
    pki.server.private_key_pem.write_to_path(str(key))
    return certificate, key


@pytest.fixture
async def front(pki: Pki, sidecar_factory: SidecarFactory, tmp_path: Path
                ) -> AsyncIterator[Front]:
    binary = require_nginx()
    sidecar = await sidecar_factory(trust={"trusted_proxies": [f"{NGINX_SOURCE}/32"]})
    certificate, key = server_files(pki, tmp_path)

    def http_context(port: int) -> str:
        return render_deploy_config(listen=f"127.0.0.1:{port}",
                                    sidecar=sidecar.url.removeprefix("http://"),
                                    certificate=certificate, key=key, proxy_bind=NGINX_SOURCE)

    async with running_nginx(binary, tmp_path / "nginx", http_context) as nginx:
        yield Front(f"https://127.0.0.1:{nginx.port}", sidecar, nginx)


def tls_context(pki: Pki, *, with_client_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    pki.server_ca.configure_trust(context)
    if with_client_certificate:
        pki.client.configure_cert(context)
    return context


async def post_token(url: str, context: ssl.SSLContext | None,
                     headers: dict[str, str] | None = None) -> int:
    connector = aiohttp.TCPConnector(ssl=context if context is not None else False,
                                     local_addr=("127.0.0.1", 0))
    async with aiohttp.ClientSession(connector=connector) as session, session.post(
            url, data=BODY, headers={**FORM, **(headers or {})}) as response:
        await response.read()
        return response.status


async def test_an_mtls_clients_certificate_reaches_the_upstream_through_nginx(
        front: Front, pki: Pki) -> None:
    context = tls_context(pki, with_client_certificate=True)
    assert await post_token(front.token_url, context) == 200
    received = front.sidecar.upstream.last
    assert received.context["X-Token-Client-Cert-S256"] == x5t_s256(pki.client_pem())
    forwarded_pem = unquote(received.context["X-Token-Client-Cert"])
    assert ssl.PEM_cert_to_DER_cert(forwarded_pem) == ssl.PEM_cert_to_DER_cert(pki.client_pem())
    assert received.context["X-Token-Client-Auth-Method"] == "tls_client_auth"
    # nginx is the edge: the client's address and scheme, as the shipped config sets them.
    # The client (as nginx set it), then nginx, the peer the sidecar saw.
    assert received.headers["X-Forwarded-For"] == f"127.0.0.1, {NGINX_SOURCE}"
    assert received.headers["X-Forwarded-Proto"] == "https"


async def test_many_requests_on_one_connection_all_carry_the_certificate(
        front: Front, pki: Pki) -> None:
    context = tls_context(pki, with_client_certificate=True)
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(20):
            async with session.post(front.token_url, data=BODY, headers=FORM) as response:
                assert response.status == 200
    thumbprints = {r.context["X-Token-Client-Cert-S256"] for r in front.sidecar.upstream.received}
    assert thumbprints == {x5t_s256(pki.client_pem())}


async def test_a_client_without_a_certificate_brings_no_certificate_context(
        front: Front, pki: Pki) -> None:
    assert await post_token(front.token_url, tls_context(pki, with_client_certificate=False)) == 200
    received = front.sidecar.upstream.last
    assert not set(CERT_CONTEXT) & set(received.context)
    assert received.context["X-Token-Client-Auth-Method"] == "none"
    assert "X-SSL-Client-Cert" not in received.headers


async def test_a_forged_certificate_header_without_a_client_certificate_is_not_believed(
        front: Front, pki: Pki) -> None:
    forged = {"X-SSL-Client-Cert": quote(pki.forged_pem(), safe=""),
              "X-Token-Client-Cert-S256": x5t_s256(pki.forged_pem())}
    context = tls_context(pki, with_client_certificate=False)
    assert await post_token(front.token_url, context, forged) == 200
    received = front.sidecar.upstream.last
    assert not set(CERT_CONTEXT) & set(received.context)
    assert received.context["X-Token-Client-Auth-Method"] == "none"
    # nginx replaced the client's header with its empty variable, i.e. sent none at all.
    assert "X-SSL-Client-Cert" not in received.headers


async def test_a_forged_certificate_header_with_a_client_certificate_is_replaced(
        front: Front, pki: Pki) -> None:
    forged = {"X-SSL-Client-Cert": quote(pki.forged_pem(), safe="")}
    context = tls_context(pki, with_client_certificate=True)
    assert await post_token(front.token_url, context, forged) == 200
    received = front.sidecar.upstream.last
    assert received.context["X-Token-Client-Cert-S256"] == x5t_s256(pki.client_pem())
    assert received.context["X-Token-Client-Cert-S256"] != x5t_s256(pki.forged_pem())
    # The header nginx passed on (and the sidecar forwards from a trusted proxy) is nginx's.
    [passed] = received.headers.getall("X-SSL-Client-Cert")
    assert ssl.PEM_cert_to_DER_cert(unquote(passed)) == ssl.PEM_cert_to_DER_cert(pki.client_pem())


async def test_a_forged_certificate_header_sent_straight_to_the_sidecar_is_dropped(
        front: Front, pki: Pki) -> None:
    # The same header nginx would send, but from 127.0.0.1, which is not a trusted proxy.
    forged = {"X-SSL-Client-Cert": quote(pki.client_pem(), safe="")}
    assert await post_token(front.sidecar.token_url, None, forged) == 200
    received = front.sidecar.upstream.last
    assert not set(CERT_CONTEXT) & set(received.context)
    assert received.context["X-Token-Client-Auth-Method"] == "none"
    assert "X-SSL-Client-Cert" not in received.headers
    # ... while through nginx (from 127.0.0.2) the real certificate is believed.
    assert await post_token(front.token_url, tls_context(pki, with_client_certificate=True)) == 200
    assert front.sidecar.upstream.last.context["X-Token-Client-Cert-S256"] == x5t_s256(
        pki.client_pem())



async def test_nginx_answers_oauth_json_when_the_sidecar_is_unreachable(
        pki: Pki, tmp_path: Path) -> None:
    binary = require_nginx()
    certificate, key = server_files(pki, tmp_path)
    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there

    def http_context(port: int) -> str:
        return render_deploy_config(listen=f"127.0.0.1:{port}", sidecar=nowhere,
                                    certificate=certificate, key=key)

    async with running_nginx(binary, tmp_path / "nginx", http_context) as nginx:
        connector = aiohttp.TCPConnector(ssl=tls_context(pki, with_client_certificate=False))
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                f"https://127.0.0.1:{nginx.port}/token", data=BODY, headers=FORM) as response:
            assert response.status == 502
            assert response.content_type == "application/json"
            assert response.headers["Cache-Control"] == "no-store"
            assert (await response.json())["error"] == "server_error"


async def test_nginx_answers_oauth_json_to_a_body_over_its_limit(front: Front, pki: Pki) -> None:
    connector = aiohttp.TCPConnector(ssl=tls_context(pki, with_client_certificate=False))
    async with aiohttp.ClientSession(connector=connector) as session, session.put(
            front.url + "/upload", data=io.BytesIO(b"x" * (11 * 1024 * 1024))) as response:
        assert response.status == 413
        assert response.content_type == "application/json"
        assert (await response.json())["error"] == "invalid_request"
    assert front.sidecar.upstream.streamed_bytes == 0

def test_without_nginx_the_tests_skip_locally_and_fail_under_ci(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nginx_support, "find_nginx", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nginx is not installed"):
        nginx_support.require_nginx()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must install nginx"):
        nginx_support.require_nginx()
