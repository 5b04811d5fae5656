"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1: connection-specific headers are never forwarded. Content-Length and Host
# are set by the client library for the hop to the upstream.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})


def _dropped(headers: CIMultiDictProxy[str], always: frozenset[str]) -> frozenset[str]:
    """`always`, plus the headers a `Connection` header names (RFC 9110 §7.6.1)."""
    if "Connection" not in headers:
        return always
    tokens = {t.strip().lower() for value in headers.getall("Connection")
              for t in value.split(",") if t.strip()}
    return always | tokens


def dropped_from(names: tuple[str, ...]) -> frozenset[str]:
    """What `request_headers_for_upstream` drops besides the context namespace: hop-by-hop
    headers and `names`, lowercased once at start-up rather than on every request."""
    return HOP_BY_HOP | {name.lower() for name in names}


def request_headers_for_upstream(
    headers: CIMultiDictProxy[str], context_prefix: str, drop: frozenset[str] = HOP_BY_HOP
) -> CIMultiDict[str]:
    """The client's headers minus `drop` (see `dropped_from`), minus anything that could pose
    as context: every inbound header that starts with the context prefix is dropped, whoever
    sent it; only the sidecar speaks in that namespace (README "Context headers sent upstream").
    """
    prefix = context_prefix.lower()
    dropped = _dropped(headers, drop)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in dropped or lowered.startswith(prefix):
            continue
        out.add(name, value)
    return out


def response_headers_for_client(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    dropped = _dropped(headers, HOP_BY_HOP)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in dropped:
            out.add(name, value)
    return out
