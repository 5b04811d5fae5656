"""Reading the request target (RFC 9112 §3.2) before anything else looks at the request.

The upstream is another HTTP stack with its own idea of a path: Tomcat drops `;params`,
Spring folds `//`, IIS decodes twice and ignores trailing dots, many servers resolve `..`
or match case-insensitively. Every spelling the upstream routes to its token handler but
the sidecar does not recognise as the token path would reach it unchecked. So the sidecar
forwards only targets it can read one way:

- origin-form only (RFC 9112 §3.2.1); absolute-form, authority-form and asterisk-form are
  refused, and the upstream URL is always `upstream.url` + the checked path;
- the path uses RFC 3986 §3.3 characters with valid percent-encoding, and neither it nor any
  decoding of it (an upstream that decodes twice) has dot segments (§5.2.4), empty segments,
  `;` path parameters, backslashes, controls, or an encoded `/`, `\\` or `.`;
- a path that a lenient server would read as a guarded path (case, trailing slash, dot or
  whitespace) *is* that guarded path: validated, or refused when matching is exact.

Pure functions (the core; no aiohttp): the handler, `sidecar/http/token.py`, calls them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from sidecar import errors
from sidecar.errors import OAuthError

# RFC 3986 §3.3: path = *( "/" segment ), pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
_PATH_CHARACTERS = re.compile(r"(?:/[A-Za-z0-9\-._~!$&'()*+,;=:@%]*)+")
# RFC 3986 §3.4 would allow fewer, but clients send `[]{}|` in queries unencoded every day;
# what cannot be read one way is a control, a space, non-ASCII or a fragment.
_QUERY_CHARACTERS = re.compile(r"[\x21-\x22\x24-\x7e]*")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# An encoded '/', '.', '\\', or control: a server that decodes before routing reads another path.
_ENCODED_DELIMITER = re.compile(r"%(?:2[EeFf]|5[Cc]|[01][0-9A-Fa-f]|7[Ff])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOT_SEGMENT = re.compile(r"/\.\.?(?=/|$)")
_TRAILING = re.compile(r"[\s/.]+$")
_EXTENSION = re.compile(r"(?<=[^/])\.[^/.]*$")
# Most targets: letters, digits, '-', '_', '~' in non-empty segments. Nothing to decode, fold
# or trim there but case and a trailing '/', so the full reading is skipped (the hot path).
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~-]+)*/?")
# Nobody encodes a path more often; a target that keeps decoding is an attack.
_MAX_DECODINGS = 3


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Target:
    """An origin-form request target that reads one way."""

    path: Final[str]  # as sent: percent-encoding kept
    query: Final[str | None]  # as sent, without the '?'; None when there was no '?'
    lenient: Final[str]  # the path as a lenient server reads it: decoded, case-folded, trimmed


def read_target(raw: str) -> Target | OAuthError:
    """The target of a request line (aiohttp's `request.raw_path`), or why it is refused."""
    if not raw.startswith("/"):
        # RFC 9112 §3.2.2-3.2.4: absolute-form would let the client name the host the request
        # goes to; authority-form and '*' name no resource of a token endpoint.
        return _refused("request.target_form", "The request target must be a path.",
                        "not origin-form")
    path, mark, query = raw.partition("?")
    if mark and not _QUERY_CHARACTERS.fullmatch(query):
        return _refused("request.query_characters",
                        "The query contains characters that are not allowed.", "query")
    if _PLAIN_PATH.fullmatch(path):
        return Target(path, query if mark else None, path.lower().rstrip("/"))
    problem = _path_problem(path)
    if problem is not None:
        return problem
    return Target(path, query if mark else None, lenient_path(path))


def lenient_path(path: str) -> str:
    """How a lenient server may read a checked path: fully decoded, Unicode-compatibility
    folded (full-width letters), case-folded, without trailing '/', '.' or whitespace (IIS
    drops trailing dots and spaces, most frameworks a trailing slash), and without a file
    extension (Spring's suffix pattern match routes /token.json to /token)."""
    layers = _decodings(path) or [path]
    trimmed = _TRAILING.sub("", _compatible(layers[-1]).casefold())
    return _EXTENSION.sub("", trimmed)


def _path_problem(path: str) -> OAuthError | None:
    if not _PATH_CHARACTERS.fullmatch(path):
        return _refused("request.path_characters",
                        "The path contains characters that are not allowed.", "characters")
    if _BAD_ESCAPE.search(path):
        return _refused("request.path_encoding", "The path has a malformed percent-escape.",
                        "bad escape")
    layers = _decodings(path)
    if layers is None:  # overlong '/' (%C0%AF) and other bytes that are not UTF-8
        return _refused("request.path_encoding", "The path is not valid UTF-8.", "utf-8")
    if len(layers) > _MAX_DECODINGS + 1:
        return _refused("request.path_encoding", "The path is encoded too many times.",
                        "decodes on and on")
    # A server that folds Unicode compatibility forms reads U+FF0F as '/': check that too.
    for layer in (*layers, _compatible(layers[-1])):
        problem = _layer_problem(layer)
        if problem is not None:
            return problem
    return None


def _layer_problem(layer: str) -> OAuthError | None:
    """What makes one reading of the path ambiguous, whichever decoding it is."""
    if _ENCODED_DELIMITER.search(layer):
        return _refused("request.path_encoded_delimiter",
                        "The path contains an encoded '/', '\\', '.' or control character.",
                        "encoded delimiter")
    if _CONTROL.search(layer):
        return _refused("request.path_control", "The path contains a control character.",
                        "control")
    if "\\" in layer:
        return _refused("request.path_backslash", "The path contains a backslash.", "backslash")
    if ";" in layer:
        # Servlet containers strip ';' path parameters before routing: /..;/token is /token.
        return _refused("request.path_parameters", "The path contains ';' parameters.", "';'")
    if "//" in layer:
        return _refused("request.path_empty_segment", "The path contains an empty segment.",
                        "'//'")
    if _DOT_SEGMENT.search(layer):
        # RFC 3986 §5.2.4: servers remove dot segments; the sidecar would have to guess how.
        return _refused("request.path_dot_segment", "The path contains a '.' or '..' segment.",
                        "dot segment")
    return None


def _decodings(path: str) -> list[str] | None:
    """The path as sent, then each percent-decoding of it until nothing changes (at most one
    more than allowed); None when a decoding is not UTF-8."""
    layers = [path]
    while len(layers) <= _MAX_DECODINGS + 1 and "%" in layers[-1]:
        try:
            decoded = unquote_to_bytes(layers[-1]).decode("utf-8")
        except UnicodeDecodeError:
            return None
        if decoded == layers[-1]:
            break
        layers.append(decoded)
    return layers


def _compatible(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _refused(result_code: str, description: str, detail: str) -> OAuthError:
    return errors.invalid_request(result_code, description, detail)


# ---------------------------------------------------------------------------------------
# Guarded paths: the ones the sidecar validates.

TOKEN = "token"  # noqa: S105 - a handler name
PAR = "par"
ATTESTATION_CHALLENGE = "attestation_challenge"
INTROSPECTION = "introspection"
REVOCATION = "revocation"


@dataclass(frozen=True, slots=True)
class GuardedPath:
    name: str  # which handler: TOKEN, PAR, ATTESTATION_CHALLENGE, INTROSPECTION, REVOCATION
    path: str  # as configured


class GuardedPaths:
    """Which guarded path a target is, however a lenient server would spell it."""

    def __init__(self, paths: Iterable[GuardedPath], *, exact: bool) -> None:
        self._by_lenient: dict[str, GuardedPath] = {}
        for guarded in paths:
            if guarded.path:
                self._by_lenient.setdefault(lenient_path(guarded.path), guarded)
        self._exact = exact

    def route(self, target: Target) -> GuardedPath | OAuthError | None:
        """The guarded path, None for a path passed through, or the refusal of a near miss
        when matching is exact (`server.token_path_match = "exact"`)."""
        guarded = self._by_lenient.get(target.lenient)
        if guarded is None or target.path == guarded.path or not self._exact:
            return guarded
        return _refused("request.path_not_exact",
                        "The path is not spelled as the endpoint's path.", guarded.name)
