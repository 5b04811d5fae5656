"""The compact serialisation (sidecar.core.jose.compact; RFC 7515 §3.1, §7.1, RFC 7519 §7.2)
and strict base64url (RFC 4648 §5, §3.5)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.jose.compact import (
    b64url_decode,
    b64url_encode,
    lenient_json_object,
    library_json_object,
    parse_compact_jws,
    strict_json_object,
)


def _segment(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _token(header: str, payload: str, signature: str = "c2ln") -> str:
    return f"{_segment(header)}.{_segment(payload)}.{signature}"


@pytest.mark.parametrize("token", [
    "",
    "a.b",
    "a.b.c.d",
    _token("{}", "{}", ""),
    _token("[]", "{}"),
    _token("{}", "not json"),
    _token("{}", '{"a":1,"a":2}'),  # a duplicate member name (RFC 7519 §7.2)
    _token("{}", '{"a":NaN}'),
    _token("{}", "{}", "c2lnA"),  # not canonical base64url
    "x" * 20000,
])
def test_parse_compact_jws_refuses(token: str) -> None:
    assert parse_compact_jws(token) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("", b""), ("AA", b"\0"), ("AAA", b"\0\0"), ("AAAA", b"\0\0\0"), ("_-8", b"\xff\xef"),
    ("A", None), ("AA==", None), ("A+", None), ("A/", None), ("A A", None), ("é", None),
    ("AB", None), ("AAB", None), ("AQ", b"\x01"), ("AAE", b"\0\x01"),  # RFC 4648 §3.5
])
def test_b64url_decode_is_strict(text: str, expected: bytes | None) -> None:
    assert b64url_decode(text) == expected


@given(st.binary(max_size=200))
def test_b64url_decode_reads_every_encoding_back(data: bytes) -> None:
    assert b64url_decode(b64url_encode(data)) == data


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/ .",
               max_size=40))
def test_b64url_decode_reads_what_the_canonical_encoding_is_and_nothing_else(text: str) -> None:
    decoded = b64url_decode(text)
    # One byte string, one spelling (RFC 4648 §3.5): the text decodes exactly when it is the
    # unpadded base64url encoding of what it decodes to.
    assert decoded is None or b64url_encode(decoded) == text


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(("raw", "strict", "lenient", "library"), [
    (b'{"a": 1}', True, True, True),
    (b'{"a": 1, "a": 2}', False, True, True),  # RFC 7519 §7.2: strict refuses duplicates
    (b'{"a": NaN}', False, False, True),  # not JSON (RFC 8259 §6); json.loads reads it
    ('{"a": 1}'.encode("utf-16"), False, False, True),  # json.loads detects UTF-16
    (b'{"a": "\xff"}', False, False, False),  # not text in any encoding json.loads knows
    (b"[1]", False, False, False),  # not an object
])
def test_the_three_readings_of_a_segment(raw: bytes, strict: bool, lenient: bool,
                                         library: bool) -> None:
    segment = _b64(raw)
    assert (strict_json_object(segment) is not None, lenient_json_object(segment) is not None,
            library_json_object(segment) is not None) == (strict, lenient, library)


def test_only_the_strict_reading_wants_canonical_base64url() -> None:
    segment = _b64(b'{"a": 1}')  # 8 bytes: the last character carries 4 bits
    noncanonical = segment[:-1] + chr(ord(segment[-1]) + 1)
    assert strict_json_object(noncanonical) is None
    assert lenient_json_object(noncanonical) == library_json_object(noncanonical) == {"a": 1}
