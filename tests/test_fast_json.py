"""sidecar/fast_json.py: orjson's speed, the standard library's text and values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from sidecar import fast_json

_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text()
            | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(), inner, max_size=4), max_leaves=12)


def _stdlib(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


@given(_VALUES)
def test_dumps_writes_what_json_writes(value: Any) -> None:
    assert fast_json.dumps(value) == _stdlib(value)


@given(st.dictionaries(st.text(), _SCALARS | st.lists(_SCALARS, max_size=2), max_size=8))
def test_dumps_flat_writes_what_json_writes(value: dict[str, Any]) -> None:
    assert fast_json.dumps_flat(value) == _stdlib(value)


@given(_VALUES)
def test_loads_reads_what_json_reads(value: Any) -> None:
    text = json.dumps(value).encode()
    assert repr(fast_json.loads(text)) == repr(json.loads(text))


def test_the_inputs_orjson_reads_otherwise() -> None:
    for text in (b'{"big":123456789012345678901234567890}', b'{"a":NaN}', b"[Infinity]",
                 b'\xef\xbb\xbf{"a":1}', '["\ud800"]'.encode("utf-8", "surrogatepass"),
                 '{"a":1}'.encode("utf-16")):
        assert repr(fast_json.loads(text)) == repr(json.loads(text))
    assert isinstance(fast_json.loads(b'{"big":123456789012345678901234567890}')["big"], int)


def test_the_errors_are_json_s() -> None:
    for text in (b"", b"{", b"[1,]", b"\xff"):
        try:
            json.loads(text)
        except ValueError as expected:
            failed: type[Exception] = type(expected)
        try:
            fast_json.loads(text)
        except ValueError as raised:
            assert isinstance(raised, failed)
        else:
            raise AssertionError(f"{text!r} was read")


def test_dumps_escapes_del_as_json_does() -> None:
    # DEL is ASCII, so the isascii() test alone let orjson's raw byte through.
    for value in ({"access_token": "a\x7fb"}, ["\x7f"], "\x7f\x00\x1f"):
        assert fast_json.dumps(value) == _stdlib(value)


def test_loads_object_is_an_object_or_none() -> None:
    assert fast_json.loads_object(b'{"a":1}') == {"a": 1}
    assert fast_json.loads_object('{"a":"\u00e9"}') == {"a": "\u00e9"}
    for text in (b"[1]", b"1", b"{", b"\xff", b"[" * 100000):
        assert fast_json.loads_object(text) is None
