"""The DPoP `htu` claim compared with the endpoint: RFC 9449 §4.3 step 9.

"Servers SHOULD employ syntax-based normalization (Section 6.2.2 of [RFC3986]) and
scheme-based normalization (Section 6.2.3 of [RFC3986])": both sides - the configured
endpoint and its aliases once at startup, the claim on every proof - go through
`normalize_htu`, and the results are compared as strings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Final

MAX_HTU_LENGTH: Final = 2048  # scheme, authority and path; query and fragment are dropped

_URI_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~:/@!$&'()*+,;=%\[\]]*")  # RFC 3986 §2
_PCT: Final = re.compile(r"%(.{0,2})", re.DOTALL)
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def normalize_htu(url: str) -> str | None:
    """`scheme://host[:port]/path` with query and fragment dropped (§4.3 step 9), scheme and
    host lower-cased, the default port dropped, an empty path made `/` (RFC 3986 §6.2.3),
    percent-escapes upper-cased and unreserved ones decoded (§6.2.2.1, §6.2.2.2), dot segments
    removed (§6.2.2.3). None when `url` is not an absolute http(s) URI without userinfo."""
    if not isinstance(url, str):
        return None
    end = len(url)
    for separator in "?#":
        index = url.find(separator, 0, end)
        if index != -1:
            end = index
    base = url[:end]
    if len(base) > MAX_HTU_LENGTH:
        return None
    return _normalize_base(base)


# The one cache left at module level, on purpose: it memoises a pure function of its argument
# (a string in, a string or None out, nothing else read), so what it holds can never differ
# from what the call would compute, nothing ever needs clearing, and no caller can tell it is
# there but by the time taken. Bounded (1024 entries, bases of at most MAX_HTU_LENGTH).
@functools.lru_cache(maxsize=1024)
def _normalize_base(base: str) -> str | None:
    # Python's urlsplit silently drops tabs and newlines and accepts non-ASCII: check the
    # characters first, so that what is compared is what the client signed.
    if not _URI_CHARS.fullmatch(base):
        return None
    scheme, separator, rest = base.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        return None
    slash = rest.find("/")
    authority, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
    host, port = _split_authority(authority)
    if host is None:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    normalised_path = _normalize_path(path)
    if normalised_path is None:
        return None
    return f"{scheme}://{host}{normalised_path}"


def _split_authority(authority: str) -> tuple[str | None, int | None]:
    if "@" in authority or "%" in authority:
        return None, None  # userinfo (RFC 9110 §4.2.4 forbids it) or an escaped reg-name
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            return None, None
        host, port_text = authority[: close + 1], authority[close + 1 :]
        if port_text and not port_text.startswith(":"):
            return None, None
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
        if "[" in host or "]" in host:
            return None, None
    if not host or host == "[]":
        return None, None
    if not port_text:
        return host.lower(), None  # RFC 3986 §6.2.3: an empty port is the default one
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        return None, None
    return host.lower(), int(port_text)


def _normalize_path(path: str) -> str | None:
    if "%" in path:
        pieces = []
        position = 0
        for match in _PCT.finditer(path):
            digits = match.group(1)
            if len(digits) != 2 or not set(digits) <= _HEX:
                return None
            char = chr(int(digits, 16))
            pieces.append(path[position:match.start()])
            pieces.append(char if char in _UNRESERVED else "%" + digits.upper())
            position = match.end()
        pieces.append(path[position:])
        path = "".join(pieces)
    if not path:
        return "/"
    if "." not in path:
        return path
    # RFC 3986 §5.2.4 remove_dot_segments, for an absolute path.
    output: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)




def normalize_htu_targets(urls: Iterable[str]) -> frozenset[str]:
    """Normalised targets for `validate_proof(htu_targets=...)` (e.g. the PAR endpoint).
    Raises ValueError on a URL that cannot be an `htu`."""
    targets: set[str] = set()
    for url in urls:
        normalised = normalize_htu(url)
        if normalised is None:
            raise ValueError(f"not usable as a DPoP htu: {url!r}")
        targets.add(normalised)
    return frozenset(targets)

