"""The decision API's strict JSON reading: every refusal names the field, never its value."""

from __future__ import annotations

import pytest

from sidecar.core.decision_api.fields import MAX_DEPTH, FieldError, Fields, parse_object


@pytest.mark.parametrize(("body", "message"), [
    (b'{"a": 1, "a": 2}', "The member 'a' appears more than once."),
    (b'{"a": {"b": 1, "b": 1}}', "The member 'b' appears more than once."),
    (b'{"a": NaN}', "The body is not valid JSON."),
    (b'{"a": Infinity}', "The body is not valid JSON."),
    (b'{"a": 1', "The body is not valid JSON."),
    (b"", "The body is not valid JSON."),
    (b"\xff\xfe{}", "The body is not UTF-8."),
    (b"[]", "The body must be a JSON object."),
    (b'"text"', "The body must be a JSON object."),
    (b"[" * 100000 + b"]" * 100000, "The body is not valid JSON."),
    (b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
     f"The body is nested more than {MAX_DEPTH} levels deep."),
])
def test_bodies_that_are_not_one_plain_json_object_are_refused(body: bytes, message: str) -> None:
    assert parse_object(body) == FieldError(message)


def test_a_plain_object_is_read() -> None:
    assert parse_object(b'{"parameters": "grant_type=x", "htm": null}') == {
        "parameters": "grant_type=x", "htm": None}


def _fields(**members: object) -> Fields:
    return Fields(members, frozenset({"s", "b", "n", "l", "o"}))


def test_an_unknown_member_is_refused_by_name() -> None:
    assert _fields(s="x", dpopNonceRequried=True).unknown() == FieldError(
        "Unknown member 'dpopNonceRequried'.")
    assert _fields(s="x").unknown() is None


@pytest.mark.parametrize(("read", "expected"), [
    (lambda f: f.text("s", max_length=3), FieldError("s must be a string.")),
    (lambda f: f.flag("b"), FieldError("b must be true or false.")),
    (lambda f: f.seconds("n"), FieldError("n must be a whole number of seconds (0 to 2^31-1).")),
    (lambda f: f.json_object("o"), FieldError("o must be a JSON object.")),
])
def test_a_member_of_the_wrong_type_is_refused_by_name(read: object, expected: FieldError) -> None:
    wrong = _fields(s=1, b="true", n="60", l="x", o=[])
    assert callable(read)
    assert read(wrong) == expected


def test_values_within_their_bounds_are_read_and_absent_or_null_ones_are_none() -> None:
    fields = _fields(s="abc", b=False, n=0, l=["x", "y"], o={"k": 1})
    assert fields.text("s", max_length=3) == "abc"
    assert fields.flag("b") is False
    assert fields.seconds("n") == 0
    assert fields.texts("l", max_length=1) == ("x", "y")
    assert fields.json_object("o") == {"k": 1}
    empty = _fields(s=None)
    assert empty.text("s", max_length=3) is None
    assert empty.flag("b") is None
    assert empty.texts("l", max_length=1) is None


@pytest.mark.parametrize("value", [True, -1, 2**31, 1.5])
def test_seconds_are_whole_non_negative_numbers(value: object) -> None:
    assert isinstance(_fields(n=value).seconds("n"), FieldError)


def test_a_long_value_is_refused_without_repeating_it() -> None:
    error = _fields(s="secret-secret").text("s", max_length=3)
    assert error == FieldError("s is longer than 3 characters.")
    too_many = _fields(l=["x"] * 101).texts("l", max_length=1)
    assert isinstance(too_many, FieldError) and "at most 100 strings" in too_many.message
