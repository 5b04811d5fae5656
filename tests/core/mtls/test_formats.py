"""Each proxy's header format (sidecar.core.mtls.formats): nginx, plain PEM, Envoy XFCC,
Traefik, AWS ALB, RFC 9440, base64 DER."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

import pytest

from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.parse import parse_client_certificate
from sidecar.settings import CERT_FORMATS
from tests.core.mtls.support import (
    ENCODERS,
    KNOWN_DER,
    KNOWN_PEM,
    KNOWN_X5T_S256,
    Pki,
    alb_cert,
    assert_certificate,
    der_base64,
    envoy_url_encode,
    nginx_escaped_cert,
    nginx_legacy_cert,
    pem_of,
    sf_binary,
    sf_binary_list,
    traefik_cert,
    xfcc_element,
)


def test_encoders_cover_every_format() -> None:
    assert set(ENCODERS) == set(CERT_FORMATS)


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
