"""tls_client_auth and self_signed_tls_client_auth
(sidecar.core.client_authentication.certificates; RFC 8705 §2)."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.credentials import (
    ClientCredentials,
)
from tests.core.client_authentication.support import (
    JWKS_URI,
    NOW,
    Issuer,
    World,
    presented,
    self_signed,
    via_id,
    x5c_jwk,
)


def dns(name: str) -> x509.GeneralName:
    return x509.DNSName(name)


@pytest.mark.parametrize(("client_id", "subject", "sans"), [
    ("pki-dn", "CN=Billing Service,OU=Payments,O=Example", []),
    ("pki-dn", "CN=billing   service,OU=PAYMENTS,O=example", []),  # compared per RFC 4518
    ("pki-dn-spaced", "CN=Billing Service,OU=Payments,O=Example", []),
    ("pki-dns", "CN=x", [dns("other.example.com"), dns("Billing.Example.COM")]),
    ("pki-uri", "CN=x", [x509.UniformResourceIdentifier("spiffe://example.com/ns/pay/sa/billing")]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))]),
    ("pki-ip6", "CN=x", [x509.IPAddress(ipaddress.ip_address("2001:db8:0::1"))]),
    ("pki-email", "CN=x", [x509.RFC822Name("Billing@example.COM")]),
])
async def test_tls_client_auth_each_subject_kind(world: World, client_id: str, subject: str,
                                                 sans: list[x509.GeneralName]) -> None:
    cert = presented(world.pki.issue(subject, sans))
    result = await world.ok(via_id(client_id, certificate=True), cert)
    assert (result.authenticated, result.method) == (True, "tls_client_auth")


@pytest.mark.parametrize(("client_id", "subject", "sans"), [
    ("pki-dn", "CN=Billing Service,OU=Refunds,O=Example", []),
    ("pki-dn", "OU=Payments,O=Example,CN=Billing Service", []),  # another order
    ("pki-dn", "CN=Billing Service,OU=Payments,O=Example,C=DE", []),
    ("pki-dns", "CN=billing.example.com", [dns("billing.example.com.evil")]),  # CN is no SAN
    ("pki-uri", "CN=x", [x509.UniformResourceIdentifier("spiffe://example.com/ns/pay/sa/Billing")]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("10.1.2.4"))]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("::ffff:10.1.2.3"))]),
    ("pki-email", "CN=x", [x509.RFC822Name("billing@example.com")]),  # local part differs
    ("pki-email", "CN=x", [dns("example.com")]),
])
async def test_tls_client_auth_subject_mismatch(world: World, client_id: str, subject: str,
                                                sans: list[x509.GeneralName]) -> None:
    cert = presented(world.pki.issue(subject, sans))
    await world.refused(via_id(client_id, certificate=True), "client.certificate_subject", cert)


async def test_tls_client_auth_wrong_ca(world: World) -> None:
    other = Issuer()
    cert = presented(other.issue("CN=Billing Service,OU=Payments,O=Example"))
    error = await world.refused(via_id("pki-dn", certificate=True), "client.certificate_untrusted",
                                cert)
    assert error.detail  # the verifier's reason is logged


async def test_tls_client_auth_with_an_intermediate(world: World) -> None:
    intermediate = Issuer(world.pki.ca.create_child_ca())
    leaf = intermediate.issue("CN=x", [dns("billing.example.com")])
    cert = presented(leaf, intermediate.certificate)
    assert (await world.ok(via_id("pki-dns", certificate=True), cert)).authenticated
    # Without the intermediate there is no path to the client's CA.
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted",
                        presented(leaf))


async def test_subject_is_matched_on_the_leaf_only(world: World) -> None:
    # The intermediate carries the registered DN; the leaf does not: refused (a server that
    # matches any certificate of the chain would accept it; RFC 8705 §2.1 names the client's).
    child = world.pki.ca.create_child_ca()
    intermediate = Issuer(child)
    ca_subject = intermediate.certificate.subject.rfc4514_string()
    leaf = intermediate.issue("CN=someone else")
    registered = world.registry.get("pki-dn")
    assert registered is not None and registered.tls_client_auth_ca_file is not None
    world.registry = registry_from_mapping({"clients": [{
        "client_id": "pki-x", "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": ca_subject,
        "tls_client_auth_ca_file": registered.tls_client_auth_ca_file}]}, Path("/"), LOCAL_FILES)
    await world.refused(via_id("pki-x", certificate=True), "client.certificate_subject",
                        presented(leaf, intermediate.certificate))


async def test_tls_client_auth_expired_certificate(world: World) -> None:
    past = datetime.datetime.fromtimestamp(NOW - 86400, datetime.UTC)
    cert = presented(world.pki.issue("CN=x", [dns("billing.example.com")], not_after=past))
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted", cert)


async def test_tls_client_auth_certificate_not_for_client_auth(world: World) -> None:
    server_only = world.pki.issue("CN=x", [dns("billing.example.com")],
                                  eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted",
                        presented(server_only))
    no_eku = world.pki.issue("CN=x", [dns("billing.example.com")], eku=[])
    assert (await world.ok(via_id("pki-dns", certificate=True), presented(no_eku))).authenticated


async def test_tls_client_auth_ca_certificate_as_leaf(world: World) -> None:
    await world.refused(via_id("pki-dn", certificate=True), "client.certificate_untrusted",
                        presented(world.pki.certificate))


async def test_trustme_leaf_with_critical_san_is_accepted(world: World) -> None:
    # trustme (like many private CAs) marks the SAN critical next to a subject; the Web PKI
    # profile refuses that, a private client PKI must not.
    leaf = world.pki.ca.issue_cert("billing.example.com", common_name="billing")
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    assert (await world.ok(via_id("pki-dns", certificate=True), presented(der))).authenticated


async def test_tls_client_auth_without_certificate(world: World) -> None:
    await world.refused(via_id("pki-dns"), "client.certificate_required")
    await world.refused(ClientCredentials("pki-dns", "tls_client_auth"),
                        "client.certificate_required")


# ---------------------------------------------------------------------------------------
# self_signed_tls_client_auth


async def test_self_signed_registered_certificate(world: World) -> None:
    result = await world.ok(via_id("device", certificate=True), presented(world.device_cert))
    assert (result.authenticated, result.method) == (True, "self_signed_tls_client_auth")


async def test_self_signed_other_certificate(world: World) -> None:
    # Same subject, same key, another certificate: not the one registered.
    again = self_signed(world.device_key)
    await world.refused(via_id("device", certificate=True), "client.certificate_not_registered",
                        presented(again))
    await world.refused(via_id("device"), "client.certificate_required")


async def test_self_signed_from_jwks_uri_follows_rotation(world: World) -> None:
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(world.device_cert))).authenticated
    new_key = ec.generate_private_key(ec.SECP256R1())
    new_cert = self_signed(new_key)
    world.fetcher.documents[JWKS_URI] = {"keys": [x5c_jwk(new_key, new_cert)]}
    await world.refused(via_id("device-remote", certificate=True),
                        "client.certificate_not_registered", presented(new_cert))
    world.clock.t += 61
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(new_cert))).authenticated
    # The key server goes away: the last good set is served for a while (stale-if-error),
    # then the client cannot authenticate until it is back.
    del world.fetcher.documents[JWKS_URI]
    world.clock.t += 400
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(new_cert))).authenticated
    world.clock.t += 3600
    await world.refused(via_id("device-remote", certificate=True), "client.jwks_unavailable",
                        presented(new_cert))
