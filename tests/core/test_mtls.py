"""The client-certificate header of each front proxy, as that proxy really writes it.

Certificates are real (a root CA, an intermediate and a client leaf from `trustme`); the header
values are built by small helpers that mimic each proxy's own encoding code, cited per helper.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core import mtls
from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.mtls import ClientCertificate, parse_client_certificate
from sidecar.errors import OAuthError
from sidecar.settings import CERT_FORMATS

# ---------------------------------------------------------------------------------------
# Certificates.


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


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = trustme.CA()
    intermediate = root.create_child_ca()
    leaf = intermediate.issue_cert("client.example", "client@example.org")
    other = intermediate.issue_cert("other.example")
    leaf_pem, intermediate_pem = (blob.bytes() for blob in leaf.cert_chain_pems)
    return Pki(
        leaf_der=der_of(leaf_pem),
        intermediate_der=der_of(intermediate_pem),
        root_der=der_of(root.cert_pem.bytes()),
        other_leaf_der=der_of(other.cert_chain_pems[0].bytes()),
    )


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


def test_encoders_cover_every_format() -> None:
    assert set(ENCODERS) == set(CERT_FORMATS)


# ---------------------------------------------------------------------------------------
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
# No certificate.


@pytest.mark.parametrize("fmt", CERT_FORMATS)
@pytest.mark.parametrize("value", [None, "", "   ", "\t\r\n"])
def test_absent_or_blank_header_is_none(fmt: str, value: str | None) -> None:
    assert parse_client_certificate(value, fmt) is None
    assert parse_client_certificate(value, fmt, "") is None


@pytest.mark.parametrize("fmt", CERT_FORMATS)
def test_blank_chain_header_is_no_chain(pki: Pki, fmt: str) -> None:
    value = ENCODERS[fmt]((pki.leaf_der,))
    assert_certificate(parse_client_certificate(value, fmt, "  "), pki.leaf_der)


# ---------------------------------------------------------------------------------------
# RFC 8705 §3.1 x5t#S256.


def test_x5t_s256_of_a_known_certificate() -> None:
    assert mtls.x5t_s256(KNOWN_DER) == KNOWN_X5T_S256
    result = parse_client_certificate(KNOWN_PEM, "pem")
    assert isinstance(result, ClientCertificate)
    assert result.x5t_s256 == KNOWN_X5T_S256
    assert result.pem() == KNOWN_PEM


@pytest.mark.parametrize("fmt", CERT_FORMATS)
def test_every_format_gives_the_same_thumbprint(fmt: str) -> None:
    result = parse_client_certificate(ENCODERS[fmt]((KNOWN_DER,)), fmt)
    assert isinstance(result, ClientCertificate)
    assert result.x5t_s256 == KNOWN_X5T_S256
    assert result.der == KNOWN_DER


def test_from_der_computes_the_thumbprint() -> None:
    cert = ClientCertificate.from_der(KNOWN_DER)
    assert cert.x5t_s256 == KNOWN_X5T_S256
    assert cert.chain == ()
    assert "x5t_s256" in repr(cert) and "MII" not in repr(cert)


# ---------------------------------------------------------------------------------------
# nginx.


def test_nginx_escaped_cert(pki: Pki) -> None:
    value = nginx_escaped_cert(pem_of(pki.leaf_der))
    assert "%0A" in value and "%20" in value and "\n" not in value
    assert_certificate(parse_client_certificate(value, "nginx"), pki.leaf_der)


def test_nginx_plus_arrives_as_percent_2b_and_is_not_a_space() -> None:
    value = nginx_escaped_cert(KNOWN_PEM)
    assert "%2B" in value and "%2F" in value and "%3D" in value and "+" not in value
    result = parse_client_certificate(value, "nginx")
    assert isinstance(result, ClientCertificate)
    assert result.x5t_s256 == KNOWN_X5T_S256


def test_nginx_with_chain_header(pki: Pki) -> None:
    value = nginx_escaped_cert(pem_of(pki.leaf_der))
    chain = nginx_escaped_cert(pem_of(pki.intermediate_der) + pem_of(pki.root_der))
    assert_certificate(parse_client_certificate(value, "nginx", chain), pki.leaf_der, pki.chain)


def test_nginx_chain_header_repeating_the_leaf_drops_it(pki: Pki) -> None:
    value = nginx_escaped_cert(pem_of(pki.leaf_der))
    chain = nginx_escaped_cert(pem_of(pki.leaf_der) + pem_of(pki.intermediate_der))
    result = parse_client_certificate(value, "nginx", chain)
    assert_certificate(result, pki.leaf_der, (pki.intermediate_der,))


def test_nginx_format_also_reads_unescaped_pem(pki: Pki) -> None:
    # The decision API may hand over the PEM as is; it has no "%" so decoding is a no-op.
    assert_certificate(parse_client_certificate(pem_of(pki.leaf_der), "nginx"), pki.leaf_der)


# ---------------------------------------------------------------------------------------
# Plain PEM.


@pytest.mark.parametrize(
    "transform",
    [
        pytest.param(lambda pem: pem, id="as-is"),
        pytest.param(lambda pem: pem.strip(), id="stripped"),
        pytest.param(lambda pem: pem.replace("\n", " "), id="newlines-as-spaces"),
        pytest.param(lambda pem: pem.replace("\n", "\r\n"), id="crlf"),
        pytest.param(nginx_legacy_cert, id="nginx-ssl_client_cert-tabs"),
        # An HTTP parser may unfold nginx's "\n\t" continuation lines (obs-fold) into a space.
        pytest.param(lambda pem: nginx_legacy_cert(pem).replace("\n\t", " "), id="unfolded"),
    ],
)
def test_pem_variants(pki: Pki, transform: Callable[[str], str]) -> None:
    value = transform(pem_of(pki.leaf_der))
    assert_certificate(parse_client_certificate(value, "pem"), pki.leaf_der)


def test_pem_several_blocks_are_leaf_then_chain(pki: Pki) -> None:
    value = " ".join(pem_of(d) for d in (pki.leaf_der, *pki.chain)).replace("\n", " ")
    assert_certificate(parse_client_certificate(value, "pem"), pki.leaf_der, pki.chain)


def test_pem_with_separate_chain_header(pki: Pki) -> None:
    value = pem_of(pki.leaf_der).replace("\n", " ")
    chain = (pem_of(pki.intermediate_der) + pem_of(pki.root_der)).replace("\n", " ")
    assert_certificate(parse_client_certificate(value, "pem", chain), pki.leaf_der, pki.chain)


# ---------------------------------------------------------------------------------------
# Envoy XFCC.


def test_envoy_cert_only(pki: Pki) -> None:
    value = xfcc_element(pem_of(pki.leaf_der), hash_hex=hashlib.sha256(pki.leaf_der).hexdigest())
    assert_certificate(parse_client_certificate(value, "envoy-xfcc"), pki.leaf_der)


def test_envoy_chain_includes_the_leaf_which_is_dropped(pki: Pki) -> None:
    chain_pems = tuple(pem_of(d) for d in (pki.leaf_der, *pki.chain))
    value = xfcc_element(pem_of(pki.leaf_der), chain_pems)
    result = parse_client_certificate(value, "envoy-xfcc")
    assert_certificate(result, pki.leaf_der, pki.chain)


def test_envoy_several_elements_use_the_last(pki: Pki) -> None:
    # APPEND_FORWARD: an outer hop's element first, the element of the proxy next to us last.
    outer = xfcc_element(pem_of(pki.other_leaf_der), by="spiffe://example.org/edge")
    inner = xfcc_element(pem_of(pki.leaf_der), (pem_of(pki.leaf_der), pem_of(pki.root_der)))
    result = parse_client_certificate(f"{outer},{inner}", "envoy-xfcc")
    assert_certificate(result, pki.leaf_der, (pki.root_der,))
    # ... and the other way round, the other certificate.
    reverse = xfcc_element(pem_of(pki.leaf_der)) + "," + xfcc_element(pem_of(pki.other_leaf_der))
    assert_certificate(parse_client_certificate(reverse, "envoy-xfcc"), pki.other_leaf_der)


def test_envoy_quoted_values_hold_separators_and_escaped_quotes(pki: Pki) -> None:
    tricky = 'CN=x\\,y;z=1,O="Quoted, Inc";Cert=fake,Chain=fake'
    value = xfcc_element(pem_of(pki.leaf_der), subject=tricky)
    assert '\\"' in value
    assert_certificate(parse_client_certificate(value, "envoy-xfcc"), pki.leaf_der)
    # The same, as the earlier of two elements.
    two = value + "," + xfcc_element(pem_of(pki.other_leaf_der), subject=tricky)
    assert_certificate(parse_client_certificate(two, "envoy-xfcc"), pki.other_leaf_der)


def test_envoy_the_docs_examples_have_no_certificate() -> None:
    # Verbatim from the Envoy docs: By/Hash/Subject/URI/DNS but no Cert: nothing to bind.
    examples = [
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c07"
        '48a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";'
        "URI=http://testclient.lyft.com",
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c07"
        "48a02dd8de688;URI=http://testclient.lyft.com,By=http://backend.lyft.com;Hash=9ba61d64"
        "25303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e;URI=http://frontend.lyft.com",
        "By=http://frontend.lyft.com;Hash=468ed33be74eee6556d90c0149c1309e9ba61d6425303443c07"
        '48a02dd8de688;Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";'
        "URI=http://testclient.lyft.com;DNS=lyft.com;DNS=www.lyft.com",
    ]
    for value in examples:
        assert parse_client_certificate(value, "envoy-xfcc") is None


def test_envoy_last_element_without_cert_is_none(pki: Pki) -> None:
    value = xfcc_element(pem_of(pki.leaf_der)) + "," + xfcc_element(hash_hex="ab" * 32)
    assert parse_client_certificate(value, "envoy-xfcc") is None


def test_envoy_chain_without_cert_takes_the_leaf_from_the_chain(pki: Pki) -> None:
    chain_pems = tuple(pem_of(d) for d in (pki.leaf_der, *pki.chain))
    value = xfcc_element(None, chain_pems)
    assert_certificate(parse_client_certificate(value, "envoy-xfcc"), pki.leaf_der, pki.chain)


def test_envoy_keys_are_case_insensitive_and_blanks_tolerated(pki: Pki) -> None:
    cert = envoy_url_encode(pem_of(pki.leaf_der))
    chain = envoy_url_encode(pem_of(pki.root_der))
    value = f'by=spiffe://x ; CERT = "{cert}" ; chain="{chain}"'
    assert_certificate(parse_client_certificate(value, "envoy-xfcc"), pki.leaf_der, (pki.root_der,))


def test_envoy_bare_cert_value(pki: Pki) -> None:
    value = "Cert=" + envoy_url_encode(pem_of(pki.leaf_der))
    assert_certificate(parse_client_certificate(value, "envoy-xfcc"), pki.leaf_der)


def test_envoy_separate_chain_header(pki: Pki) -> None:
    # e.g. request_headers_to_add with %DOWNSTREAM_PEER_CHAIN%: URL-encoded PEM, leaf included.
    value = xfcc_element(pem_of(pki.leaf_der))
    chain = envoy_url_encode("".join(pem_of(d) for d in (pki.leaf_der, *pki.chain)))
    result = parse_client_certificate(value, "envoy-xfcc", chain)
    assert_certificate(result, pki.leaf_der, pki.chain)
    # Given twice (XFCC Chain and the chain header), each certificate appears once.
    both = xfcc_element(pem_of(pki.leaf_der), tuple(pem_of(d) for d in pki.chain))
    assert_certificate(parse_client_certificate(both, "envoy-xfcc", chain), pki.leaf_der, pki.chain)


# ---------------------------------------------------------------------------------------
# Traefik.


@pytest.mark.parametrize("escaped", [True, False], ids=["v2-query-escaped", "v3-raw"])
def test_traefik_leaf_and_chain(pki: Pki, escaped: bool) -> None:
    value = traefik_cert((pki.leaf_der, *pki.chain), escaped=escaped)
    if escaped:
        assert "%2C" in value and "," not in value
    assert_certificate(parse_client_certificate(value, "traefik"), pki.leaf_der, pki.chain)


def test_traefik_plus_and_slash_escaped() -> None:
    value = traefik_cert((KNOWN_DER,))
    assert "%2B" in value and "%2F" in value
    result = parse_client_certificate(value, "traefik")
    assert isinstance(result, ClientCertificate) and result.x5t_s256 == KNOWN_X5T_S256


# ---------------------------------------------------------------------------------------
# AWS ALB.


def test_alb_leaf_header_keeps_plus_slash_equals_unescaped() -> None:
    value = alb_cert((KNOWN_PEM,))
    assert "+" in value and "/" in value and "=" in value and "%0A" in value
    result = parse_client_certificate(value, "aws-alb")
    assert isinstance(result, ClientCertificate) and result.x5t_s256 == KNOWN_X5T_S256


def test_alb_passthrough_whole_chain(pki: Pki) -> None:
    value = alb_cert(tuple(pem_of(d) for d in (pki.leaf_der, *pki.chain)))
    assert_certificate(parse_client_certificate(value, "aws-alb"), pki.leaf_der, pki.chain)


def test_alb_form_encoded_boundary_space(pki: Pki) -> None:
    value = alb_cert((pem_of(pki.leaf_der),)).replace("%20", "+")
    assert_certificate(parse_client_certificate(value, "aws-alb"), pki.leaf_der)


# ---------------------------------------------------------------------------------------
# RFC 9440.


def test_rfc9440_client_cert_and_chain(pki: Pki) -> None:
    result = parse_client_certificate(
        sf_binary(pki.leaf_der), "rfc9440", sf_binary_list(pki.chain)
    )
    assert_certificate(result, pki.leaf_der, pki.chain)


@pytest.mark.parametrize(
    "chain_format",
    [
        pytest.param("{a},{b}", id="no-blanks"),
        pytest.param("{a} ,\t{b}", id="blanks"),
        pytest.param("{a};ttl=3;x=?1, {b};note=\"a, b; c\"", id="parameters"),
    ],
)
def test_rfc9440_chain_list_syntax(pki: Pki, chain_format: str) -> None:
    chain = chain_format.format(a=sf_binary(pki.intermediate_der), b=sf_binary(pki.root_der))
    result = parse_client_certificate(sf_binary(pki.leaf_der), "rfc9440", chain)
    assert_certificate(result, pki.leaf_der, pki.chain)


def test_rfc9440_unpadded_item_and_parameters(pki: Pki) -> None:
    value = " :" + base64.b64encode(pki.leaf_der).decode().rstrip("=") + ":;a=1 "
    assert_certificate(parse_client_certificate(value, "rfc9440"), pki.leaf_der)


# ---------------------------------------------------------------------------------------
# base64 DER.


@pytest.mark.parametrize("urlsafe", [False, True], ids=["standard", "urlsafe-unpadded"])
def test_der_base64(pki: Pki, urlsafe: bool) -> None:
    value = der_base64((pki.leaf_der, *pki.chain), urlsafe=urlsafe)
    assert_certificate(parse_client_certificate(value, "der-base64"), pki.leaf_der, pki.chain)


def test_der_base64_blanks_around_members(pki: Pki) -> None:
    value = " , ".join(base64.b64encode(d).decode() for d in (pki.leaf_der, pki.root_der))
    result = parse_client_certificate(value, "der-base64")
    assert_certificate(result, pki.leaf_der, (pki.root_der,))


# ---------------------------------------------------------------------------------------
# Malformed values: always invalid_request, never an exception.


def _malformed_cases(pki: Pki, fmt: str) -> dict[str, str]:
    encode = ENCODERS[fmt]
    good = encode((pki.leaf_der,))
    spki = (
        x509.load_der_x509_certificate(pki.leaf_der)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    cases = {
        "garbage": "this is not a certificate",
        "binary-garbage": "MIIB-\x7f:%;,=\"'",
        "half-the-header": good[: len(good) // 2],
        "truncated-der": encode((pki.leaf_der[: len(pki.leaf_der) // 2],)),
        "der-with-trailing-bytes": encode((pki.leaf_der + b"\x00",)),
        "not-a-certificate-der": encode((spki,)),
        "one-megabyte": "A" * 1_000_000,
        "nul-byte": good[:40] + "\x00" + good[40:],
        "non-ascii": good[:40] + "é" + good[40:],
        "lone-surrogate": good[:40] + "\ud800" + good[40:],
    }
    if fmt != "rfc9440":  # Client-Cert holds one certificate; its chain list is tested below
        cases["too-many-certificates"] = encode((pki.leaf_der,) * 12)
    if fmt in ("nginx", "aws-alb", "traefik", "envoy-xfcc"):
        cases["bad-percent-escape"] = good.replace("%", "%G", 1) if "%" in good else good + "%G1"
        # In XFCC only Cert and Chain are percent-decoded: put the escape inside Cert.
        at_end = good.replace('";', '%2";', 1) if fmt == "envoy-xfcc" else good + "%2"
        cases["percent-at-end"] = at_end
        cases["percent-encoded-nul"] = good[:40] + "%00" + good[40:]
        cases["percent-encoded-non-ascii"] = good[:40] + "%C3%A9" + good[40:]
    if fmt == "envoy-xfcc":
        cert = envoy_url_encode(pem_of(pki.leaf_der))
        cases["unterminated-quote"] = f'By=x;Cert="{cert}'
        cases["unterminated-quote-in-subject"] = f'Cert="{cert}";Subject="CN=x'
        cases["text-after-quote"] = f'Cert="{cert}"x'
        cases["stray-quote"] = f'By=a"b;Cert="{cert}"'
        cases["pair-without-equals"] = f'By;Cert="{cert}"'
        cases["empty-key"] = f'=x;Cert="{cert}"'
        cases["trailing-semicolon"] = f'Cert="{cert}";'
        cases["trailing-comma"] = f'Cert="{cert}",'
        cases["two-certs-in-cert"] = f'Cert="{cert}{cert}"'
        cases["cert-twice"] = f'Cert="{cert}";cert="{cert}"'
        cases["cert-is-garbage"] = 'Cert="hello"'
    if fmt == "rfc9440":
        b64 = base64.b64encode(pki.leaf_der).decode()
        cases["no-colons"] = b64
        cases["missing-closing-colon"] = ":" + b64
        cases["two-items"] = f":{b64}:, :{b64}:"
        cases["inner-list"] = f"(:{b64}:)"
        cases["string-item"] = f'"{b64}"'
        cases["urlsafe-alphabet"] = ":" + base64.urlsafe_b64encode(KNOWN_DER).decode() + ":"
    if fmt in ("nginx", "aws-alb", "pem"):
        pem = pem_of(pki.leaf_der)
        cases["no-end-line"] = encode_pem_like(fmt, pem.split("-----END")[0])
        cases["text-before-pem"] = encode_pem_like(fmt, "hello " + pem)
        cases["bad-base64-in-pem"] = encode_pem_like(fmt, pem.replace("M", "*", 2))
        cases["nested-begin"] = encode_pem_like(fmt, pem.replace("-----END", pem + "-----END"))
    if fmt in ("der-base64", "traefik"):
        b64 = base64.b64encode(pki.leaf_der).decode()
        cases["empty-member"] = b64 + ",,"
        cases["padding-in-the-middle"] = b64[:8] + "=" + b64[8:]
        cases["impossible-length"] = b64.rstrip("=")[:-2] + "A"
    return cases


def encode_pem_like(fmt: str, pem: str) -> str:
    if fmt == "nginx":
        return nginx_escaped_cert(pem)
    return alb_cert((pem,)) if fmt == "aws-alb" else pem


@pytest.mark.parametrize("fmt", CERT_FORMATS)
def test_malformed_values_are_invalid_request(pki: Pki, fmt: str) -> None:
    cases = _malformed_cases(pki, fmt)
    for name, value in cases.items():
        result = parse_client_certificate(value, fmt)
        assert isinstance(result, OAuthError), (name, result)
        assert_malformed(result)


@pytest.mark.parametrize("fmt", CERT_FORMATS)
def test_malformed_chain_header_is_invalid_request(pki: Pki, fmt: str) -> None:
    good = ENCODERS[fmt]((pki.leaf_der,))
    for chain in ("garbage", "A" * 1_000_000, "\x00", "é", "%zz"):
        assert_malformed(parse_client_certificate(good, fmt, chain))


def test_too_many_distinct_certificates(pki: Pki) -> None:
    ca = trustme.CA()
    pems = [ca.issue_cert(f"c{i}.example").cert_chain_pems[0].bytes().decode() for i in range(11)]
    assert_malformed(parse_client_certificate("".join(pems), "pem"))
    assert isinstance(parse_client_certificate("".join(pems[:10]), "pem"), ClientCertificate)
    # Split over the certificate and chain headers, the limit is on the total.
    leaf, chain = pems[0], "".join(pems[1:])
    assert_malformed(parse_client_certificate(leaf, "pem", chain))


def test_rfc9440_chain_list_limit(pki: Pki) -> None:
    leaf = sf_binary(pki.leaf_der)
    chain = sf_binary_list((pki.root_der,) * 11)
    assert_malformed(parse_client_certificate(leaf, "rfc9440", chain))


def test_value_at_the_size_limit(pki: Pki) -> None:
    pem = pem_of(pki.leaf_der)
    padded = pem + " " * (mtls.MAX_HEADER_CHARS - len(pem))
    assert_certificate(parse_client_certificate(padded, "pem"), pki.leaf_der)
    assert_malformed(parse_client_certificate(padded + " x", "pem"))


def test_unknown_format_is_a_server_error(pki: Pki) -> None:
    result = parse_client_certificate(pem_of(pki.leaf_der), "haproxy")
    assert isinstance(result, OAuthError)
    assert result.status == 500
    assert result.result_code == "mtls.unknown_format"


def test_unforeseen_library_error_is_still_invalid_request(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(_: bytes) -> x509.Certificate:
        raise TypeError("boom")

    value = pem_of(pki.leaf_der)
    monkeypatch.setattr(x509, "load_der_x509_certificate", explode)  # the module mtls calls
    result = parse_client_certificate(value, "pem", cache=None)  # not an earlier answer
    assert_malformed(result)
    assert isinstance(result, OAuthError) and result.detail == "TypeError"


def test_identical_values_are_memoised(pki: Pki) -> None:
    value = nginx_escaped_cert(pem_of(pki.leaf_der))
    first = parse_client_certificate(value, "nginx")
    assert parse_client_certificate(value, "nginx") is first
    assert parse_client_certificate(value, "pem") is not first  # the format is in the key


def test_a_cache_handed_in_is_the_one_used(pki: Pki) -> None:
    value = pem_of(pki.leaf_der)
    cache: mtls.CertificateCache = BoundedCache(4)
    first = parse_client_certificate(value, "pem", cache=cache)
    assert len(cache) == 1 and parse_client_certificate(value, "pem", cache=cache) is first
    assert parse_client_certificate(value, "pem", cache=None) is not first


# ---------------------------------------------------------------------------------------
# Properties.

_HEADERISH = st.lists(
    st.sampled_from(
        [
            *'MIIBCgAQ+/=:;,"\\% -_\t\n\r\x00é0123456789abcdefABCDEF',
            *("-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", "%0A", "%2B"),
            *("Cert=", "Chain=", "Hash=", "MIIBejCCASCgAwIBAgIBATAK"),
        ]
    ),
    max_size=60,
).map("".join)


def _check_outcome(result: object) -> None:
    assert result is None or isinstance(result, ClientCertificate | OAuthError)
    if isinstance(result, OAuthError):
        assert result.code == "invalid_request"


@settings(max_examples=300, deadline=None)
@given(
    fmt=st.sampled_from(CERT_FORMATS),
    value=st.one_of(st.none(), st.text(), _HEADERISH),
    chain=st.one_of(st.none(), st.text(), _HEADERISH),
)
def test_arbitrary_text_never_raises(fmt: str, value: str | None, chain: str | None) -> None:
    _check_outcome(parse_client_certificate(value, fmt, chain))


@settings(max_examples=200, deadline=None)
@given(
    fmt=st.sampled_from(CERT_FORMATS),
    position=st.integers(min_value=0, max_value=10_000),
    insert=st.text(max_size=4),
    cut=st.integers(min_value=0, max_value=10_000),
)
def test_mangled_real_headers_never_raise(fmt: str, position: int, insert: str, cut: int) -> None:
    good = ENCODERS[fmt]((KNOWN_DER,))
    position %= len(good) + 1
    mangled = good[:position] + insert + good[position + cut % 3 :]
    _check_outcome(parse_client_certificate(mangled, fmt))
