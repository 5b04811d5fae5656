"""The JWS compact serialisation (RFC 7515 §7.1): base64url segments and their JSON.

The one reader of compact JWTs in the sidecar. Nothing here verifies a signature or knows an
OAuth error: a token that is not a compact JWS is None, and each caller answers with its own
error code.

Two readings of a segment's JSON:
- strict (`strict_json_object`, `parse_compact_jws`): canonical base64url, no duplicate
  member names, no NaN or Infinity - for every token whose claims the sidecar acts on;
- lenient (`lenient_json_object`): any base64url, UTF-8, the last duplicate wins - for the
  shape checks made on tokens the upstream verifies (a jwt-bearer assertion without trusted
  issuers);
- as a JWT library reads it (`library_json_object`): `json.loads` of the bytes, so UTF-16
  and UTF-32 too, and NaN or Infinity - only to learn the client id a `client_assertion`
  claims before anything verifies it. The sidecar refused none of those when it only
  extracted the id, and a registry-less sidecar must not refuse what the upstream (pyjwt,
  authlib) accepts; a registry's verification reads the same token strictly.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

MAX_JWS_LENGTH: Final = 16384  # an 8192-bit RSA signature and a generous payload
# For tokens that the sidecar only shapes and forwards: the request body limit bounds them.
UNBOUNDED: Final = sys.maxsize

# RFC 7515 §7.1: three base64url segments (RFC 7515 §2, no padding), none of them empty.
COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
# The same with an empty signature: an unsecured JWT (RFC 7519 §6), to be named as such.
_COMPACT_UNSIGNED: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")

_B64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_URL_SAFE_TO_STANDARD: Final = bytes.maketrans(b"-_", b"+/")
_B64URL_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# The last character of an unpadded encoding carries 2 (length % 4 == 2) or 4 (== 3) data
# bits; the rest must be zero.
_CANONICAL_LAST: Final = {2: frozenset(_B64URL_ALPHABET[::16]),
                          3: frozenset(_B64URL_ALPHABET[::4])}


def b64url_decode(text: str) -> bytes | None:
    """Strict base64url without padding (RFC 7515 §2, Appendix C); None when malformed.

    Canonical only (RFC 4648 §3.5): the unused low bits of the last character must be zero,
    so that one byte string has exactly one encoding (no two spellings of one signature).
    """
    remainder = len(text) % 4
    if remainder == 1 or not _B64URL.fullmatch(text):
        return None
    if remainder and text[-1] not in _CANONICAL_LAST[remainder]:
        return None
    # Fast path: the text is known to be the URL-safe alphabet (ASCII) by now, so binascii
    # decodes it directly, without base64.urlsafe_b64decode's type checks and copies (0.4
    # against 1.0 us; twice a DPoP proof).
    data = text.encode("ascii").translate(_URL_SAFE_TO_STANDARD) + b"=" * (-remainder % 4)
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        return None


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class DuplicateMemberError(ValueError):
    """A JSON object with a member name twice; `name` is the first repeated one."""

    def __init__(self, name: str) -> None:
        super().__init__("duplicate member name")
        self.name = name


def _object_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    # RFC 7515 §5.2 / RFC 7519 §7.2: reject duplicate member names rather than let the last
    # one win, so the sidecar and the upstream can never read different claims.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise DuplicateMemberError(_first_repeated(name for name, _ in pairs))
    return result


def _first_repeated(names: Iterable[str]) -> str:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return ""


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity (RFC 8259 §6)


_STRICT_JSON: Final = json.JSONDecoder(object_pairs_hook=_object_pairs,
                                       parse_constant=_reject_constant)
# One decoder for every call: json.loads(**kw) would build a new one each time.
_LENIENT_JSON: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _json_object(raw: bytes | None, decoder: json.JSONDecoder) -> dict[str, object] | None:
    if raw is None:
        return None
    try:
        value = decoder.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # includes UnicodeDecodeError, JSONDecodeError
        return None
    return value if isinstance(value, dict) else None


def strict_json_value(text: str) -> object:
    """Any JSON text read strictly: a member name twice raises DuplicateMemberError, NaN and
    the infinities (not JSON, RFC 8259 §6) and malformed text ValueError, very deep nesting
    RecursionError. For callers that tell the writer what was wrong (the decision API)."""
    return _STRICT_JSON.decode(text)


def strict_json_object(segment: str) -> dict[str, object] | None:
    """A base64url JOSE segment that is a JSON object, read strictly; None otherwise."""
    return _json_object(b64url_decode(segment), _STRICT_JSON)


def strict_json_document(raw: bytes) -> dict[str, object] | None:
    """A JSON object read as strictly as a JOSE segment (no duplicate members, no NaN), from
    a document that is not base64url: an introspection answer (RFC 7662 §2.2); else None."""
    return _json_object(raw, _STRICT_JSON)


def lenient_json_object(segment: str) -> dict[str, object] | None:
    """A base64url segment that is a JSON object, read as most JWT libraries do (padding
    bits ignored, the last duplicate member wins); None otherwise. Only for shape checks of
    tokens the upstream verifies: never act on claims read this way."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None
    return _json_object(raw, _LENIENT_JSON)


def library_json_object(segment: str) -> dict[str, object] | None:
    """A base64url segment that is a JSON object, read as `json.loads` reads bytes (UTF-8,
    -16 or -32; NaN and Infinity accepted; the last duplicate wins), which is what pyjwt and
    authlib do; None otherwise. Never act on claims read this way (module docstring)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError
        return None
    return value if isinstance(value, dict) else None


def split_compact(token: str, *, allow_unsigned: bool = False,
                  max_length: int = MAX_JWS_LENGTH) -> tuple[str, str, str] | None:
    """The header, payload and signature segments of a compact JWS, still encoded; None
    when `token` is not three base64url segments (the last may be empty with
    `allow_unsigned`) or is longer than `max_length`."""
    if len(token) > max_length:
        return None
    match = (_COMPACT_UNSIGNED if allow_unsigned else COMPACT).fullmatch(token)
    if match is None:
        return None
    header, payload, signature = match.groups()
    return header, payload, signature


@dataclass(frozen=True, slots=True, repr=False)
class CompactJws:
    header: Mapping[str, object]
    claims: Mapping[str, object]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str | None:
        alg = self.header.get("alg")
        return alg if isinstance(alg, str) else None

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None

    def __repr__(self) -> str:
        return f"CompactJws(alg={self.alg!r}, kid={self.kid!r})"


def signing_input(header: str, payload: str) -> bytes:
    """RFC 7515 §5.1 step 5: what the signature covers."""
    return f"{header}.{payload}".encode("ascii")


def parse_compact_jws(token: str, max_length: int = MAX_JWS_LENGTH) -> CompactJws | None:
    """Header, claims and signature of a compact JWS, read strictly; None when it is not one.

    Duplicate JSON member names are refused (RFC 7515 §5.2, RFC 7519 §7.2), so the sidecar
    and the upstream can never read different claims from one token.
    """
    segments = split_compact(token, max_length=max_length)
    if segments is None:
        return None
    encoded_header, encoded_claims, encoded_signature = segments
    header, claims = strict_json_object(encoded_header), strict_json_object(encoded_claims)
    signature = b64url_decode(encoded_signature)
    if header is None or claims is None or signature is None:
        return None
    return CompactJws(header, claims, signing_input(encoded_header, encoded_claims), signature)
