"""Certificates and header values for the mTLS tests: a trustme PKI, a known certificate with
its openssl-computed thumbprint, and each proxy's encoder."""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.errors import OAuthError


@dataclass(frozen=True)
class Pki:
    leaf_der: bytes
    intermediate_der: bytes
    root_der: bytes
    other_leaf_der: bytes  # a second client, for "which element wins" tests

    @property
    def chain(self) -> tuple[bytes, ...]:
        return (self.intermediate_der, self.root_der)


def pem_of(der: bytes) -> str:
    """PEM of any bytes (the malformed-value tests wrap non-certificates too), written by the
    standard library rather than by the code under test."""
    return ssl.DER_cert_to_PEM_cert(der)


def der_of(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


# A fixed self-signed P-256 certificate made with `openssl req -x509`, and its x5t#S256
# computed with openssl, not with the code under test:
#   openssl x509 -outform DER | openssl dgst -sha256 -binary | openssl base64 -A \
#     | tr '+/' '-_' | tr -d '='
# (openssl's SHA-256 fingerprint: D5:70:FA:BD:39:B5:F0:81:...:DD:C4). Its base64 holds "+" and
# "/", which the percent-encoding tests rely on.
KNOWN_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBejCCASCgAwIBAgIBATAKBggqhkjOPQQDAjAbMRkwFwYDVQQDDBB4NXQta25v
d24tYW5zd2VyMCAXDTI2MTEyNzAyMzIyMloYDzIxMjYxMTAzMDIzMjIyWjAbMRkw
FwYDVQQDDBB4NXQta25vd24tYW5zd2VyMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAEkehbL89YX2wmwP9rQncZiMGm7rRYvCQPCQgYpqDm8EwnQTh+K8eVBBrrdH5M
Djzv88tzHO2Rvn3pEf92KuE+LaNTMFEwHQYDVR0OBBYEFC4sBhyUtey0FzNTaXqw
UsZcQXFCMB8GA1UdIwQYMBaAFC4sBhyUtey0FzNTaXqwUsZcQXFCMA8GA1UdEwEB
/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgSrXtPk/hNmUyXXl48ruBTC9oa4MN
zgk7gUMmvYLJ3Z8CIQDqavl+rMCq6i0fkptIStD79axGp/dXvvSV30oInmi9ew==
-----END CERTIFICATE-----
"""
KNOWN_X5T_S256 = "1XD6vTm18IFo1z_Wiw3Gz_qWfCMxBdzlAZfqZ2d03cQ"
KNOWN_DER = der_of(KNOWN_PEM.encode("ascii"))


# ---------------------------------------------------------------------------------------
# Header values, as each proxy writes them.


def nginx_escaped_cert(pem: str) -> str:
    """nginx `$ssl_client_escaped_cert`: `ngx_escape_uri(..., NGX_ESCAPE_URI_COMPONENT)`
    escapes everything outside the unreserved characters, "+", "/", "=", space and LF
    included (nginx src/event/ngx_event_openssl.c, ngx_ssl_get_escaped_certificate)."""
    return quote(pem, safe="")


def nginx_legacy_cert(pem: str) -> str:
    """nginx's deprecated `$ssl_client_cert`: the PEM without its last newline, a tab after
    every other newline (ngx_ssl_get_certificate)."""
    return pem[:-1].replace("\n", "\n\t")


def envoy_url_encode(pem: str) -> str:
    """Envoy's urlEncodedPemEncodedPeerCertificate[Chain] (source/common/tls):
    absl::StrReplaceAll(pem, {"\\n": "%0A", " ": "%20", "+": "%2B", "/": "%2F", "=": "%3D"})."""
    for char, escape in (("\n", "%0A"), (" ", "%20"), ("+", "%2B"), ("/", "%2F"), ("=", "%3D")):
        pem = pem.replace(char, escape)
    return pem


def xfcc_element(
    cert_pem: str | None = None,
    chain_pems: tuple[str, ...] = (),
    *,
    by: str = "spiffe://example.org/ingress",
    hash_hex: str | None = None,
    subject: str = "CN=client.example,O=Example\\, Inc.,OU=a;b=c",
    uri: str = "spiffe://example.org/client",
) -> str:
    """One XFCC element the way Envoy's conn_manager_utility writes it: By, Hash, Cert and
    Chain quoted, Subject always quoted, URI and DNS bare (Envoy docs, XFCC)."""
    pairs = [f"By={by}"]
    if hash_hex is not None:
        pairs.append(f"Hash={hash_hex}")
    if cert_pem is not None:
        pairs.append(f'Cert="{envoy_url_encode(cert_pem)}"')
    if chain_pems:
        pairs.append(f'Chain="{envoy_url_encode("".join(chain_pems))}"')
    quoted_subject = subject.replace("\\", "\\\\").replace('"', '\\"')
    pairs += [f'Subject="{quoted_subject}"', f"URI={uri}", "DNS=client.example"]
    return ";".join(pairs)


def traefik_cert(ders: tuple[bytes, ...], *, escaped: bool = True) -> str:
    """Traefik passTLSClientCert `pem: true`: each PEM without its boundaries and newlines,
    joined with "," (pkg/middlewares/passtlsclientcert, sanitize/getCertificates); Traefik
    v2 then applied Go's url.QueryEscape (like quote_plus with nothing safe), v3 does not."""
    value = ",".join(base64.b64encode(der).decode("ascii") for der in ders)
    return quote_plus(value, safe="") if escaped else value


def alb_cert(pems: tuple[str, ...]) -> str:
    """AWS ALB X-Amzn-Mtls-Clientcert: "URL-encoded PEM format with +=/ as safe characters";
    in passthrough mode the whole chain, leaf first."""
    return quote("".join(pems), safe="+=/")


def sf_binary(der: bytes) -> str:
    """RFC 8941 §4.1.8 byte sequence, as RFC 9440 §2.1 Client-Cert."""
    return ":" + base64.b64encode(der).decode("ascii") + ":"


def sf_binary_list(ders: tuple[bytes, ...]) -> str:
    """RFC 8941 §4.1.1 list, as RFC 9440 §2.1 Client-Cert-Chain."""
    return ", ".join(sf_binary(der) for der in ders)


def der_base64(ders: tuple[bytes, ...], *, urlsafe: bool = False) -> str:
    if urlsafe:
        return ",".join(base64.urlsafe_b64encode(d).decode().rstrip("=") for d in ders)
    return ",".join(base64.b64encode(d).decode() for d in ders)


# For the tests that run over every format: the header for a certificate list (leaf first).
ENCODERS: dict[str, Callable[[tuple[bytes, ...]], str]] = {
    "nginx": lambda ders: nginx_escaped_cert("".join(pem_of(d) for d in ders)),
    "envoy-xfcc": lambda ders: xfcc_element(pem_of(ders[0]), tuple(pem_of(d) for d in ders)),
    "traefik": traefik_cert,
    "aws-alb": lambda ders: alb_cert(tuple(pem_of(d) for d in ders)),
    "rfc9440": lambda ders: sf_binary(ders[0]),
    "pem": lambda ders: "".join(pem_of(d) for d in ders).replace("\n", " "),
    "der-base64": der_base64,
}


# Checks.


def independent_x5t(der: bytes) -> str:
    digest = x509.load_der_x509_certificate(der).fingerprint(hashes.SHA256())
    assert digest == hashlib.sha256(der).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def assert_certificate(
    result: object, leaf: bytes, chain: tuple[bytes, ...] = ()
) -> ClientCertificate:
    assert isinstance(result, ClientCertificate), result
    assert result.der == leaf
    assert result.chain == chain
    assert result.x5t_s256 == independent_x5t(leaf)
    assert result.pem() == pem_of(leaf)
    assert result.chain_pems() == tuple(pem_of(d) for d in chain)
    encoded = result.url_encoded_pem()
    assert re.fullmatch(r"[A-Za-z0-9%._~-]+", encoded), "not a clean header value"
    assert unquote(encoded) == result.pem()
    assert result.certificate().public_bytes(serialization.Encoding.DER) == leaf
    return result


def assert_malformed(result: object) -> None:
    assert isinstance(result, OAuthError), result
    assert result.code == "invalid_request"
    assert result.status == 400
    assert result.result_code == "mtls.bad_certificate_header"
    assert result.description


# ---------------------------------------------------------------------------------------
