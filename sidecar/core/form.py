"""Strict `application/x-www-form-urlencoded` parsing for the token endpoint.

The standard library's parsers are lenient where a token endpoint must not be: they replace
bad percent-escapes and bad UTF-8 silently and let the last of two values win. Here each of
those is `invalid_request` (RFC 6749 §3.2: "Request and response parameters MUST NOT be
included more than once"), except the parameters that may repeat.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from sidecar import errors
from sidecar.errors import OAuthError
from sidecar.model import FormParams

# RFC 8707 §2 (resource) and RFC 8693 §2.1 (resource, audience) may be sent more than once.
REPEATABLE = frozenset({"resource", "audience"})

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def parse_form(body: bytes) -> FormParams | OAuthError:
    values: dict[str, list[str]] = {}
    for piece in body.split(b"&"):
        if not piece:
            continue  # "a=1&&b=2" and a trailing "&" carry no parameter
        raw_name, _, raw_value = piece.partition(b"=")
        name = decode_component(raw_name)
        value = decode_component(raw_value)
        if isinstance(name, OAuthError):
            return name
        if isinstance(value, OAuthError):
            return value.with_detail(f"parameter {name[:40]!r}")
        if not name:
            return errors.invalid_request("request.empty_parameter_name",
                                          "A parameter has an empty name.")
        if not value:
            continue  # RFC 6749 §3.1: parameters sent without a value are treated as omitted
        seen = values.setdefault(name, [])
        if seen and name not in REPEATABLE:
            return errors.invalid_request("request.duplicate_parameter",
                                          f"The parameter {name!r} is included more than once.")
        seen.append(value)
    return FormParams({name: tuple(vals) for name, vals in values.items()})


def decode_component(raw: bytes) -> str | OAuthError:
    """One form-urlencoded name or value: '+' is a space, escapes strict, UTF-8 strict."""
    if b"%" not in raw and b"+" not in raw:
        # Fast path: nothing to unescape (most names and values): the escape check's regex
        # search and the replace skipped, four times a token request.
        return _utf8(raw)
    if _BAD_ESCAPE.search(raw):
        return errors.invalid_request("request.bad_percent_encoding",
                                      "The body has a malformed percent-escape.")
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)  # escapes were checked above, so nothing is left as is
    return _utf8(raw)


def _utf8(raw: bytes) -> str | OAuthError:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return errors.invalid_request("request.invalid_utf8", "The body is not valid UTF-8.")
