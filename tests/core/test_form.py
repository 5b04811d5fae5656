"""Strict form parsing (RFC 6749 §3.1, §3.2; README step 1)."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.core.form import parse_form
from sidecar.errors import OAuthError
from sidecar.model import FormParams


def test_decodes_plus_and_escapes() -> None:
    params = parse_form(b"scope=a+b%20c&x=%E2%82%AC%2B")
    assert isinstance(params, FormParams)
    assert dict(params) == {"scope": "a b c", "x": "€+"}


@pytest.mark.parametrize("body", [b"a=1&a=2", b"a=%zz", b"a=%e2%82", b"=v", b"a=%", b"a=\xff"])
def test_refusals(body: bytes) -> None:
    result = parse_form(body)
    assert isinstance(result, OAuthError)
    assert result.code == "invalid_request"


def test_repeatable_parameters() -> None:
    params = parse_form(b"resource=a&resource=b&audience=c&audience=d")
    assert isinstance(params, FormParams)
    assert params.get_all("resource") == ("a", "b")
    assert params.get_all("audience") == ("c", "d")


def test_empty_values_and_segments_are_omitted() -> None:
    params = parse_form(b"a=&&b=1&")
    assert isinstance(params, FormParams)
    assert dict(params) == {"b": "1"}


def test_repr_hides_values() -> None:
    params = parse_form(b"client_secret=hunter2")
    assert "hunter2" not in repr(params)


@given(st.binary(max_size=300))
def test_never_raises(body: bytes) -> None:
    assert isinstance(parse_form(body), FormParams | OAuthError)


@given(st.dictionaries(st.text(min_size=1), st.text(min_size=1), max_size=6))
def test_reads_what_urlencode_writes(pairs: dict[str, str]) -> None:
    # Both spellings of a space: "+" (urlencode), "%20" (quote).
    for body in (urlencode(pairs), urlencode(pairs, quote_via=quote)):
        params = parse_form(body.encode())
        assert isinstance(params, FormParams)
        assert dict(params) == pairs
