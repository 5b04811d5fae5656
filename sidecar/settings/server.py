"""The server's own sections: `[server]` (listeners, paths, timeouts, admission),
`[upstream]`, `[logging]`, `[metrics]`, `[api]` (the decision API), and the endpoints passed
through with additions: `[introspection]`, `[metadata]`."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.settings import checks
from sidecar.settings.keys import EventLoop, GcMode, LogFormat, LogLevel, PathMatch, key


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    listen: str = key("0.0.0.0:8080", checks.listen)
    admin_listen: str = key("0.0.0.0:9090", checks.listen)
    # The decision API (README "Calling instead of proxying"): off when empty; never the
    # token or the admin port.
    api_listen: str = key("", checks.optional_listen)
    token_path: str = key("/token", checks.path)
    # "lenient": a spelling of a guarded path that a lenient upstream routes the same
    # (/TOKEN, /token/) is validated as that path; "exact": such a spelling is refused.
    token_path_match: PathMatch = key("lenient", checks.one_of_literal(PathMatch))
    # Query parameters the token and PAR endpoints' URL may carry (RFC 6749 §3.2); any other
    # query component there is refused.
    token_query_allowed: tuple[str, ...] = key((), checks.query_names)
    public_token_endpoint: str = key(check=checks.http_url)
    issuer: str = key("", checks.http_url)  # defaults to the origin of public_token_endpoint
    max_body_bytes: int = key(65536, checks.positive)
    shutdown_grace_seconds: float = key(20.0, checks.non_negative)
    # Processes serving the same ports (SO_REUSEPORT); more than one needs a shared store.
    workers: int = key(1, checks.positive)
    # "auto": uvloop when it is installed (a dependency: faster sockets and callbacks), else
    # asyncio's own loop; "asyncio": always asyncio's own loop.
    event_loop: EventLoop = key("auto", checks.one_of_literal(EventLoop))
    # "tuned": once started, the startup objects frozen out of the cyclic collector's passes
    # and its young generation collected every 10 000 allocations (sidecar/gc_tuning.py);
    # "python": the interpreter's defaults.
    gc: GcMode = key("tuned", checks.one_of_literal(GcMode))
    # Slow and idle clients (sidecar/http/connections.py). The whole request head within
    # this (a front proxy sends it at once; a slowloris trickles it), from the connection's
    # opening or, on keep-alive, from the request's first byte.
    header_timeout_seconds: float = key(10.0, checks.positive)
    body_timeout_seconds: float = key(10.0, checks.positive)  # the longest gap between body bytes
    # Above nginx's and Envoy's 60 s upstream idle timeouts (deploy/): the proxy closes an
    # idle connection first, never reuses one the sidecar is closing (a POST lost that way
    # is not retried). At most an hour: aiohttp's own idle timer is the backstop behind it.
    keepalive_timeout_seconds: float = key(75.0, checks.at_most(3600.0))
    # Per worker. When full, the connection waiting longest for its client is closed to make
    # room; none waiting, the new one is refused with 503. Keep it below the descriptor limit.
    max_connections: int = key(1024, checks.positive)
    # The admin listener's own bound (metrics and probes need a handful): its connections
    # hold descriptors of the same process, so an unbounded admin port could starve the
    # token port. The same timeouts as above; full, the same eviction.
    admin_max_connections: int = key(64, checks.positive)
    # Admission (sidecar/http/admission.py): token-path requests handled at once per process;
    # beyond that up to max_queued wait, each at most queue_timeout_seconds, in arrival order;
    # past that a request is shed with 503 temporarily_unavailable and Retry-After.
    max_in_flight: int = key(256, checks.positive)
    max_queued: int = key(1024, checks.non_negative)
    queue_timeout_seconds: float = key(2.0, checks.positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    url: str = key(check=checks.upstream_url)
    timeout_seconds: float = key(10.0, checks.positive)
    connect_timeout_seconds: float = key(2.0, checks.positive)
    pool_size: int = key(100, checks.positive)
    # Below the upstream's own idle timeout, so a pooled connection is never reused just as
    # the upstream closes it (a POST on such a connection fails and is never retried).
    keepalive_seconds: float = key(4.0, checks.positive)
    preserve_host: bool = key(False)  # send the client's Host instead of the upstream's
    max_token_response_bytes: int = key(1048576, checks.positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    level: LogLevel = key("info", checks.one_of_literal(LogLevel))
    format: LogFormat = key("json", checks.one_of_literal(LogFormat))

@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    # Client ids as a label: only for a registry small enough to keep series bounded.
    client_id_label: bool = key(False)

@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """The decision API on `server.api_listen`: who may call it and how much they may send."""

    # One key a line (blank lines and # comments ignored), each at least 32 characters; a
    # caller presents one as `Authorization: Bearer <key>`. Rotate by adding the new key,
    # then removing the old one, as for nonce secrets.
    key_file: str = key("", path=True)
    max_body_bytes: int = key(262144, checks.positive)

@dataclass(frozen=True, slots=True, kw_only=True)
class IntrospectionSettings:
    """RFC 7662 introspection and RFC 7009 revocation through the sidecar: `cnf` added to
    the answers for bound tokens, bindings deleted on revocation. Off when the path is empty."""

    path: str = key("", checks.path)
    revocation_path: str = key("", checks.path)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataSettings:
    """RFC 8414 / OpenID Discovery documents passed through with what the sidecar enforces."""

    augment: bool = key(True)
