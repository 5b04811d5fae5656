"""Header bytes go out as they came in.

aiohttp decodes header values as UTF-8 with `surrogateescape`, so a value that is not UTF-8
(obs-text, RFC 9110 §5.5: `Ren\\xe9e` in Latin-1) keeps its bytes as lone surrogates. Its
header writer, though, encodes with plain UTF-8 and its C version silently skips
surrogates: `Ren\\xe9e` would reach the upstream as `Rene`, a value the client never sent.
The writer below encodes with `surrogateescape` as well, which gives back exactly the bytes
that were read, in both directions (requests to the upstream, answers to the client).

aiohttp has no public hook for this; `tests/http/test_forwarding.py` sends obs-text through a
raw socket and checks the bytes that arrive, so an aiohttp upgrade that changes it fails
loudly.
"""

from __future__ import annotations

from aiohttp import http_writer
from multidict import CIMultiDict

_aiohttp_serialize_headers = http_writer._serialize_headers


def serialize_headers(status_line: str, headers: CIMultiDict[str]) -> bytes:
    # All ASCII (`isascii` is O(1) in CPython) is the usual case: aiohttp's own (C) writer
    # writes that exactly as it is.
    # `map` over the C method, not a generator: this runs twice for every request.
    if status_line.isascii() and all(map(str.isascii, headers.values())):
        return _aiohttp_serialize_headers(status_line, headers)
    # `_safe_header` refuses CR, LF and other controls (header injection). Surrogates stand
    # for bytes 0x80-0xff only, so none of them hides a control character.
    safe = http_writer._safe_header
    safe(status_line)
    lines = [safe(name) + ": " + safe(value) for name, value in headers.items()]
    return (status_line + "\r\n" + "\r\n".join(lines) + "\r\n\r\n").encode(
        "utf-8", "surrogateescape")


def install() -> None:
    """Make aiohttp's StreamWriter (server and client side) write headers as above."""
    http_writer._serialize_headers = serialize_headers
