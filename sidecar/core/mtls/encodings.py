"""The building blocks of every format: percent-encoding, base64, PEM, and the bounds on the
work one header can cause."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

# Limits on the work one header can cause. A client certificate is 1-2 KiB of PEM and real
# chains are 2-4 deep; these leave ample room and still bound the parse.
MAX_HEADER_CHARS = 64 * 1024
MAX_CERTIFICATES = 10  # the leaf and the chain together


PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"
_PEM_BLOCK = re.compile(re.escape(PEM_BEGIN) + r"(.*?)" + re.escape(PEM_END), re.DOTALL)
# A header value may hold visible ASCII, and the whitespace of a PEM (newlines only where it
# did not travel in an HTTP header, e.g. the decision API). NUL, other controls and anything
# non-ASCII are refused before any decoding.
_FORBIDDEN_CHAR = re.compile(r"[^\t\n\r\x20-\x7e]")
_BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WHITESPACE = re.compile(r"\s+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BASE64URL_ONLY = re.compile(r"[-_]")


class MalformedError(Exception):
    """Raised inside the parsers; turned into `invalid_request` by `parse_client_certificate`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_characters(text: str) -> None:
    if _FORBIDDEN_CHAR.search(text):
        raise MalformedError("it contains control or non-ASCII characters")


def limit_count(count: int) -> None:
    # Counted before anything is decoded, so a header of thousands of tiny certificates costs
    # one scan and not thousands of base64 and ASN.1 parses.
    if count > MAX_CERTIFICATES:
        raise MalformedError("it holds too many certificates")


def percent_decode(text: str) -> str:
    """Percent-decode strictly, and without turning "+" into a space.

    nginx and Envoy escape "+" as %2B, but ALB leaves "+" unescaped (it is one of its "safe"
    characters), so "+" is a literal here, never the form-encoding of a space: that is
    `unquote`, not `unquote_plus`. A "%" not followed by two hex digits is refused instead of
    being passed through as `unquote` would.
    """
    if _BAD_PERCENT_ESCAPE.search(text):
        raise MalformedError("it has a bad percent-escape")
    try:
        decoded = unquote(text, encoding="ascii", errors="strict")
    except UnicodeDecodeError as exc:
        raise MalformedError("it has a percent-escape of a non-ASCII byte") from exc
    check_characters(decoded)
    return decoded


def b64decode(text: str, *, urlsafe: bool = False) -> bytes:
    """Decode base64 strictly: only the alphabet, "=" only at the end; padding optional."""
    if urlsafe and _BASE64URL_ONLY.search(text):
        text = text.replace("-", "+").replace("_", "/")
    text = text.rstrip("=")
    if len(text) % 4 == 1 or not _BASE64.fullmatch(text):
        raise MalformedError("it is not valid base64")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise MalformedError("it is not valid base64") from exc


def pem_certificates(text: str) -> list[bytes]:
    """The DER of each `CERTIFICATE` block; nothing but whitespace may surround them.

    Whitespace inside a block is ignored, which accepts a PEM whose line breaks a proxy
    replaced by spaces (a header cannot carry a newline) and nginx's deprecated
    `$ssl_client_cert`, where every line after the first starts with a tab (nginx
    `ngx_ssl_get_certificate`), whatever the HTTP parser made of the folded lines.
    """
    limit_count(text.count(PEM_BEGIN))
    blocks = _PEM_BLOCK.findall(text)
    if not blocks:
        raise MalformedError("it holds no PEM certificate")
    if _PEM_BLOCK.sub("", text).strip():
        raise MalformedError("it has text outside the PEM certificates, or a truncated one")
    return [b64decode(_WHITESPACE.sub("", body)) for body in blocks]


def base64_der_list(text: str) -> list[bytes]:
    members = text.split(",")
    limit_count(len(members))
    ders = []
    for member in members:
        token = member.strip()
        if not token:
            raise MalformedError("it has an empty member")
        ders.append(b64decode(token, urlsafe=True))
    return ders
