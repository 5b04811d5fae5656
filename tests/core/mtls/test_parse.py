"""The entry point (sidecar.core.mtls.parse): no certificate, malformed values (always
invalid_request, never an exception), the cache, and properties over arbitrary headers."""

from __future__ import annotations

import base64

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.encodings import MAX_HEADER_CHARS
from sidecar.core.mtls.parse import CertificateCache, certificate_cache, parse_client_certificate
from sidecar.errors import OAuthError
from sidecar.settings import CERT_FORMATS
from tests.core.mtls.support import (
    ENCODERS,
    KNOWN_DER,
    Pki,
    alb_cert,
    assert_certificate,
    assert_malformed,
    envoy_url_encode,
    nginx_escaped_cert,
    pem_of,
    sf_binary,
    sf_binary_list,
)

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
    padded = pem + " " * (MAX_HEADER_CHARS - len(pem))
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
    monkeypatch.setattr(x509, "load_der_x509_certificate", explode)  # the module mtls.parse calls
    result = parse_client_certificate(value, "pem", cache=None)  # not an earlier answer
    assert_malformed(result)
    assert isinstance(result, OAuthError) and result.detail == "TypeError"


def test_identical_values_are_memoised(pki: Pki) -> None:
    value = nginx_escaped_cert(pem_of(pki.leaf_der))
    cache = certificate_cache()  # what a policy owns
    first = parse_client_certificate(value, "nginx", cache=cache)
    assert parse_client_certificate(value, "nginx", cache=cache) is first
    assert parse_client_certificate(value, "pem", cache=cache) is not first  # format in the key


def test_a_cache_handed_in_is_the_one_used(pki: Pki) -> None:
    value = pem_of(pki.leaf_der)
    cache: CertificateCache = BoundedCache(4)
    first = parse_client_certificate(value, "pem", cache=cache)
    assert len(cache) == 1 and parse_client_certificate(value, "pem", cache=cache) is first
    assert parse_client_certificate(value, "pem", cache=None) is not first


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
