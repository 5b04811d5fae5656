"""RFC 4514 distinguished names (sidecar.core.clients.dn)."""

from __future__ import annotations

import pytest

from sidecar.core.clients.dn import parse_dn


@pytest.mark.parametrize("variant", [
    "CN=Billing Client,OU=Payments,O=Example Corp,C=DE",
    "cn=billing client,ou=payments,o=example corp,c=de",
    "CN = Billing Client , OU=Payments,  O=Example   Corp, C=DE",
    "CN=  Billing   Client  ,OU=Payments,O=Example Corp,C=DE",
    "2.5.4.3=Billing Client,2.5.4.11=Payments,2.5.4.10=Example Corp,2.5.4.6=DE",
    "CN=Billing\\20Client,OU=Payments,O=Example Corp,C=DE",
    "CN=#0C0E42696C6C696E6720436C69656E74,OU=Payments,O=Example Corp,C=DE",
    "CN=#130E42696C6C696E6720436C69656E74,OU=Payments,O=Example Corp,C=DE",
])
def test_dn_variants_are_equal(variant: str) -> None:
    assert parse_dn(variant) == parse_dn("CN=Billing Client,OU=Payments,O=Example Corp,C=DE")


def test_dn_order_multivalued_rdns_and_escapes() -> None:
    dn = parse_dn("CN=a\\,b+UID=7,O=Caf\\C3\\A9 \\+ Co,DC=example,DC=com")
    assert len(dn) == 4
    assert dn[0] == frozenset({("0.9.2342.19200300.100.1.25", "com")})  # RDNSequence order
    assert dn[-1] == frozenset({("2.5.4.3", "a,b"), ("0.9.2342.19200300.100.1.1", "7")})
    assert ("2.5.4.10", "café + co") in dn[2]
    # a multi-valued RDN is a set: its order does not matter
    assert parse_dn("UID=7+CN=a\\,b,O=x") == parse_dn("CN=a\\,b+UID=7,O=x")
    # the order of RDNs does
    assert parse_dn("CN=a,O=x") != parse_dn("O=x,CN=a")
    assert parse_dn("E=bob@example.com,CN=b") == parse_dn("emailAddress=BOB@example.com,cn=b")


@pytest.mark.parametrize(("dn", "message"), [
    ("", "empty"),
    ("CN", "no '='"),
    ("CN=a,", "no '='"),
    ("XX=a", "unknown attribute type"),
    ("1.2=a,9x=b", "unknown attribute type"),
    ("CN=a\\q", "bad escape"),
    ("CN=a\"b", "must be escaped"),
    ("CN=a;b", "must be escaped"),
    ("CN=", "empty attribute value"),
    ("CN=\\ff", "not UTF-8"),
    ("CN=#zz", "not hex"),
    ("CN=#0403616263", "not a BER-encoded string"),
    ("CN=#0C05616263", "bad length"),
    ("CN=#0C8561", "bad length"),
    ("CN=a+CN=a", "repeats"),
    ("CN=#1402ff41", None),  # T.61, decoded as Latin-1: accepted
])
def test_bad_dns(dn: str, message: str | None) -> None:
    if message is None:
        assert parse_dn(dn)
        return
    with pytest.raises(ValueError, match=message):
        parse_dn(dn)


def test_long_form_ber_length() -> None:
    text = "x" * 200
    encoded = "0C81C8" + text.encode().hex()
    assert parse_dn(f"CN=#{encoded}") == parse_dn(f"CN={text}")
