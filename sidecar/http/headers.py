"""Which headers cross the proxy, in each direction.

Header names are compared *folded*: lowercase, with `_` read as `-`. That is how the servers
behind a proxy see them: CGI and WSGI turn both `X-Token-Subject` and `X_Token_Subject` into
`HTTP_X_TOKEN_SUBJECT`, so a rule that only knew the dashed spelling would let the other one
through to an upstream that reads it as the same header.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

from sidecar.core.bounded_cache import Memo

# RFC 9110 §7.6.1: connection-specific headers are never forwarded. Host is set by the
# client library for the hop to the upstream; Content-Length from the parsed request (the
# buffered token body's own length, or the pass-through body's, see proxy._framed_body).
# Expect too: the sidecar has answered `100 Continue` itself (aiohttp does when the handler
# reads the body), so an upstream asked again, and not answering 100, would leave the
# request waiting.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length", "expect",
})

# The list of addresses a request came through; the sidecar appends its peer's (see
# CLIENT_ADDRESS_HEADERS below for the rest of the family).
FORWARDED_FOR = "x-forwarded-for"
# Headers some frameworks read *instead of* the request target (IIS URL Rewrite, Symfony,
# Zend): the sidecar checked the target it received, so a header that names another one goes
# nowhere, whoever sent it.
TARGET_OVERRIDES = frozenset({"x-original-url", "x-rewrite-url"})
_NAMES_KEPT = 1024  # header names whose folding and verdict ForwardRules remembers
_NAME_KEPT_CHARS = 64  # a longer name is judged afresh each time, never kept
_NO_TOKENS: frozenset[str] = frozenset()


def fold(name: str) -> str:
    """A header name as the upstream's framework may see it (see the module docstring)."""
    return name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class HeaderNames:
    """A set of header names, folded: exact names, and prefixes that stand for a family."""

    exact: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()

    @classmethod
    def of(cls, names: Iterable[str]) -> HeaderNames:
        """`names` as configured: a trailing `*` makes a name a prefix (`X-Client-Cert-*`)."""
        folded = [fold(n.strip()) for n in names if n.strip()]
        return cls(frozenset(n for n in folded if not n.endswith("*")),
                   tuple(n[:-1] for n in folded if n.endswith("*")))

    def __or__(self, other: HeaderNames) -> HeaderNames:
        return HeaderNames(self.exact | other.exact, self.prefixes + other.prefixes)

    def __contains__(self, folded: str) -> bool:
        return folded in self.exact or folded.startswith(self.prefixes)


# What proxies say about the client's connection: its address, and the scheme, host and port
# it used (RFC 7239 Forwarded, the X-Forwarded-* family, CDN client-IP headers). From an
# untrusted peer these are whatever the client chose, and are dropped; the sidecar then says
# who its peer was in X-Forwarded-For, as a proxy does.
CLIENT_ADDRESS_HEADERS = HeaderNames(
    frozenset({"forwarded", "x-real-ip", "true-client-ip", "cf-connecting-ip", "x-client-ip",
               "x-cluster-client-ip", "fastly-client-ip", "x-original-forwarded-for",
               "x-envoy-external-address"}),
    ("x-forwarded-",))


@dataclass(frozen=True, slots=True)
class ForwardRules:
    """What `request_headers_for_upstream` drops, computed once at start-up."""

    context_prefix: str  # folded: the namespace only the sidecar speaks in
    always: HeaderNames  # dropped from everyone
    untrusted: HeaderNames  # dropped from peers that are not trusted proxies
    # Headers the sidecar reads by their dashed name only: another spelling (`Content_Type`,
    # `OAuth_Client_Attestation`) is one the sidecar did not check but the upstream may read
    # as the same header, so it is dropped.
    read_by_name: frozenset[str]
    # The headers the sidecar reads or writes: a client's `Connection` list cannot remove them,
    # so what the upstream receives is what the sidecar decided on.
    kept_despite_connection: frozenset[str]
    # Fast path of `verdict`: (name, trusted) -> (folded, dropped). Not part of the value.
    _verdicts: Memo[tuple[str, bool], tuple[str, bool]] = field(
        init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_verdicts", Memo(self._verdict, _NAMES_KEPT,
                                                   max_key_chars=_NAME_KEPT_CHARS))

    @classmethod
    def build(cls, context_prefix: str, untrusted: HeaderNames, *, reads: Iterable[str],
              reads_any_spelling: Iterable[str], writes: Iterable[str]) -> ForwardRules:
        read = frozenset(fold(n) for n in reads)
        return cls(
            context_prefix=fold(context_prefix),
            always=HeaderNames(HOP_BY_HOP | TARGET_OVERRIDES | {fold(n) for n in writes}),
            untrusted=untrusted | CLIENT_ADDRESS_HEADERS,
            read_by_name=read,
            kept_despite_connection=read | {fold(n) for n in reads_any_spelling}
            | {FORWARDED_FOR})

    def drops(self, name: str, folded: str, *, trusted: bool, hop: frozenset[str]) -> bool:
        return (folded in self.always or folded in hop or folded.startswith(self.context_prefix)
                or (not trusted and folded in self.untrusted)
                or ("_" in name and folded in self.read_by_name))

    def verdict(self, name: str, *, trusted: bool) -> tuple[str, bool]:
        """`name` folded, and whether `drops` drops it whatever the `Connection` header
        names. Fast path: remembered per name (clients send the same few names on every
        request), which saves the folding and the five set lookups of `drops` per header."""
        return self._verdicts((name, trusted), len(name))

    def _verdict(self, key: tuple[str, bool]) -> tuple[str, bool]:
        name, trusted = key
        folded = fold(name)
        return folded, self.drops(name, folded, trusted=trusted, hop=_NO_TOKENS)


def _connection_tokens(headers: MultiMapping[str]) -> frozenset[str]:
    """The headers a `Connection` header names (RFC 9110 §7.6.1), folded."""
    values = headers.getall("Connection", ())
    if not values:
        return _NO_TOKENS
    if len(values) == 1:
        return _TOKENS_OF_ONE_VALUE(values[0], len(values[0]))
    return frozenset().union(*(_tokens_of(value) for value in values))


def _tokens_of(value: str) -> frozenset[str]:
    return frozenset(fold(t.strip()) for t in value.split(",") if t.strip())


# Fast path of `_connection_tokens`: the tokens of one Connection value ("keep-alive",
# "close", ...), remembered: every answer of a keep-alive upstream, and most requests, carry
# the same one. A pure function's answers, so any event loop may share them.
_TOKENS_OF_ONE_VALUE = Memo(_tokens_of, 64, max_key_chars=64)


def request_headers_for_upstream(
    headers: CIMultiDictProxy[str], rules: ForwardRules, *, trusted: bool, peer: str | None,
) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones, minus anything that could pose as context:
    every inbound header in the context namespace, in any spelling, whoever sent it (README "Context
    headers sent upstream"); from untrusted peers also certificate and client-address headers.
    `X-Forwarded-For` ends with `peer`, appended to a trusted proxy's list, alone otherwise.
    """
    hop = _connection_tokens(headers) - rules.kept_despite_connection
    out: CIMultiDict[str] = CIMultiDict()
    forwarded_for: list[str] = []
    for name, value in headers.items():
        # `drops` is `verdict`'s answer or the name being in `hop`.
        folded, dropped = rules.verdict(name, trusted=trusted)
        if dropped or folded in hop:
            continue
        if folded == FORWARDED_FOR:
            forwarded_for.append(value.strip())
            continue
        out.add(name, value)
    if peer:
        forwarded_for.append(peer)
    forwarded_for = [v for v in forwarded_for if v]
    if forwarded_for:
        out["X-Forwarded-For"] = ", ".join(forwarded_for)
    return out


def values_of(headers: CIMultiDictProxy[str], name: str) -> list[str]:
    """Every value of `name`, in any spelling that folds to it (see `fold`)."""
    wanted = fold(name)
    return [value for key, value in headers.items() if fold(key) == wanted]


def response_headers_for_client(headers: MultiMapping[str]) -> CIMultiDict[str]:
    tokens = _connection_tokens(headers)
    dropped = HOP_BY_HOP if tokens <= HOP_BY_HOP else HOP_BY_HOP | tokens
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        if fold(name) not in dropped:
            out.add(name, value)
    return out
