"""RFC 4514 distinguished names: parsing the string form, and normalising both it and a
certificate's subject (RFC 4518 preparation) so that they compare."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

NormalisedDn = tuple[frozenset[tuple[str, str]], ...]


# RFC 4514 §3 names, and the other attribute types found in client certificate subjects.
_ATTRIBUTE_TYPES: Final[Mapping[str, str]] = {
    name: oid.dotted_string for name, oid in {
        "cn": NameOID.COMMON_NAME, "l": NameOID.LOCALITY_NAME,
        "st": NameOID.STATE_OR_PROVINCE_NAME, "o": NameOID.ORGANIZATION_NAME,
        "ou": NameOID.ORGANIZATIONAL_UNIT_NAME, "c": NameOID.COUNTRY_NAME,
        "street": NameOID.STREET_ADDRESS, "dc": NameOID.DOMAIN_COMPONENT,
        "uid": NameOID.USER_ID, "emailaddress": NameOID.EMAIL_ADDRESS,
        "email": NameOID.EMAIL_ADDRESS, "e": NameOID.EMAIL_ADDRESS,  # OpenSSL, Java
        "serialnumber": NameOID.SERIAL_NUMBER,
        "sn": NameOID.SURNAME, "givenname": NameOID.GIVEN_NAME, "title": NameOID.TITLE,
        "initials": NameOID.INITIALS, "generationqualifier": NameOID.GENERATION_QUALIFIER,
        "dnqualifier": NameOID.DN_QUALIFIER, "pseudonym": NameOID.PSEUDONYM,
        "postalcode": NameOID.POSTAL_CODE, "businesscategory": NameOID.BUSINESS_CATEGORY,
        "organizationidentifier": NameOID.ORGANIZATION_IDENTIFIER,
    }.items()
}
_DESCR: Final = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_NUMERICOID: Final = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))+")
_HEXPAIR: Final = re.compile(r"[0-9A-Fa-f]{2}")
_ESCAPABLE: Final = frozenset(' "#+,;<=>\\')
_MUST_ESCAPE: Final = frozenset('";<>')
# BER string types a `#hexstring` value may hold (X.520 DirectoryString and friends).
_BER_STRINGS: Final[Mapping[int, str]] = {0x0C: "utf-8", 0x12: "ascii", 0x13: "ascii",
                                          0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be",
                                          0x1C: "utf-32-be"}


def prepare(value: str) -> str:
    """The comparison form of an attribute value: caseIgnoreMatch (RFC 4517 §4.2.11) after
    RFC 4518 string preparation - NFKC, case folding, insignificant space handling (leading and
    trailing spaces dropped, inner runs made one). It is the matching rule of every attribute
    type RFC 4514 §3 names, and of emailAddress and serialNumber."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


def normalise_name(name: x509.Name) -> NormalisedDn:
    return tuple(
        frozenset((a.oid.dotted_string,
                   prepare(a.value) if isinstance(a.value, str) else "#" + a.value.hex())
                  for a in rdn)
        for rdn in name.rdns)


def parse_dn(text: str) -> NormalisedDn:
    """An RFC 4514 string to normalised RDNs in RDNSequence order (§2.1: the string lists
    them last first). Attribute types are case-insensitive (§3). Spaces around `,` `+` `=` are
    tolerated, as RFC 4514 §4 allows readers to. Raises ValueError."""
    rdns: list[frozenset[tuple[str, str]]] = []
    current: set[tuple[str, str]] = set()
    position, end = 0, len(text)
    if not text.strip():
        raise ValueError("an empty DN")
    while True:
        equals = text.find("=", position)
        if equals == -1:
            raise ValueError(f"no '=' after position {position}")
        oid = _attribute_type(text[position:equals].strip())
        value, position = _attribute_value(text, equals + 1)
        if (oid, value) in current:
            raise ValueError("an attribute repeats within one RDN")
        current.add((oid, value))
        if position == end or text[position] == ",":
            rdns.append(frozenset(current))
            current = set()
        if position == end:
            break
        position += 1  # past "," or "+"
    return tuple(reversed(rdns))


def _attribute_type(name: str) -> str:
    if _NUMERICOID.fullmatch(name):
        return name
    oid = _ATTRIBUTE_TYPES.get(name.lower()) if _DESCR.fullmatch(name) else None
    if oid is None:
        raise ValueError(f"unknown attribute type {name!r} (use a name of RFC 4514 §3 or an "
                         "OID such as 2.5.4.3)")
    return oid


def _attribute_value(text: str, position: int) -> tuple[str, int]:
    """Read a value from `position`; return its prepared form and the index of the `,` or
    `+` that ends it (or the end of the text)."""
    end = len(text)
    while position < end and text[position] == " ":
        position += 1
    if position < end and text[position] == "#":
        stop = position + 1
        while stop < end and text[stop] not in ",+":
            stop += 1
        return prepare(_ber_string(text[position + 1:stop].strip())), stop
    raw = bytearray()
    while position < end and text[position] not in ",+":
        char = text[position]
        if char == "\\":
            pair = text[position + 1:position + 3]
            if _HEXPAIR.fullmatch(pair):
                raw.append(int(pair, 16))
                position += 3
                continue
            if pair[:1] in _ESCAPABLE:
                raw.extend(pair[0].encode())
                position += 2
                continue
            raise ValueError(f"a bad escape at position {position}")
        if char in _MUST_ESCAPE:
            raise ValueError(f"{char!r} must be escaped in a value (RFC 4514 §2.4)")
        raw.extend(char.encode("utf-8"))
        position += 1
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("escaped bytes are not UTF-8") from None
    if not prepare(value):
        raise ValueError("an empty attribute value")
    return prepare(value), position


def _ber_string(hex_text: str) -> str:
    """RFC 4514 §2.4 `#hexstring`: the BER encoding of the value; string types only."""
    try:
        data = bytes.fromhex(hex_text)
    except ValueError:
        raise ValueError("a #hexstring that is not hex") from None
    if len(data) < 2 or data[0] not in _BER_STRINGS:
        raise ValueError("a #hexstring that is not a BER-encoded string")
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count not in (1, 2) or len(data) < 2 + count:
            raise ValueError("a #hexstring with a bad length")
        length, offset = int.from_bytes(data[2:2 + count], "big"), 2 + count
    if len(data) != offset + length:
        raise ValueError("a #hexstring with a bad length")
    try:
        return data[offset:].decode(_BER_STRINGS[data[0]])
    except UnicodeDecodeError:
        raise ValueError("a #hexstring whose text does not decode") from None
