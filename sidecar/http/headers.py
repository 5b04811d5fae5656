"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

# RFC 9110 §7.6.1: connection-specific headers are never forwarded. Content-Length and Host
# are set by the client library for the hop to the upstream.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})


def _connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", ()):
        tokens.update(t.strip().lower() for t in value.split(",") if t.strip())
    return tokens


def request_headers_for_upstream(
    headers: CIMultiDictProxy[str], context_prefix: str, drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones, minus anything that could pose as context.

    Every inbound header that starts with the context prefix is dropped, whoever sent it:
    only the sidecar speaks in that namespace (SPEC "Non-negotiables").
    """
    prefix = context_prefix.lower()
    dropped = HOP_BY_HOP | _connection_tokens(headers) | {name.lower() for name in drop}
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in dropped or lowered.startswith(prefix):
            continue
        out.add(name, value)
    return out


def response_headers_for_client(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    dropped = HOP_BY_HOP | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if name.lower() not in dropped:
            out.add(name, value)
    return out
