"""Redis: the store shared by every replica, in each deployment a platform team runs.

* `redis://[user:pass@]host[:6379][/db][?options]`: standalone Redis, a `redis.asyncio.Redis`
  over a `BlockingConnectionPool`; `rediss://` the same over TLS.
* `redis+sentinel://[user:pass@]h1:p1,h2:p2/service_name[?db=0][&tls=true]`: the master of
  `service_name`, `redis.asyncio.sentinel.Sentinel(...).master_for(service_name)`.
* `redis+cluster://[user:pass@]h1:p1,h2:p2[?tls=true]`: Redis Cluster,
  `redis.asyncio.cluster.RedisCluster(startup_nodes=[ClusterNode(...), ...])`.

All routing (which master, which node owns a slot, MOVED/ASK, failover discovery) is redis-py's
own; this module only configures the clients and wraps them in one `RedisStore`.

URLs. Hosts are `host:port` separated by commas, IPv6 in brackets (`[::1]:26379`); the port
defaults to 6379 (26379 for Sentinel). `user:pass@` is percent-decoded; everything up to the
last `@` is the user part, so a password may contain `@`, `/`, `?` or `#`. The user and the
password can also come from config (`store.username`, `store.password_file`), not from both.
Sentinel's own password (when the sentinels have one) comes from `store.sentinel_password_file`.
TLS: `rediss://`, or `tls=true` for Sentinel and Cluster (it applies to every connection,
sentinels included); the server certificate and its host name are always verified, against
`store.tls_ca_file` or the system's CAs; `store.tls_cert_file`/`tls_key_file` present a client
certificate. A `redis://` query string takes redis-py's own options (`?socket_timeout=0.5`,
which win over config); Sentinel takes `db` and `tls`, Cluster `tls`. Errors are ValueErrors
naming `store.url` (or the key at fault) that quote nothing of the URL but its scheme and
query parameter names: a piece of it could be a password.

Replay checks. One atomic command, `SET <key> 1 NX PX <ttl_ms>`, in one round trip: of two
replicas that see the same value at the same instant, exactly one gets OK (on a Cluster the key
lives on one master, so the same holds).

Keys. Values are hashed before they reach Redis (`store_key`: `<prefix><kind>:<sha256>`).
Standalone and Sentinel use exactly that layout (a Sentinel setup is a standalone server with
failover, and the same data must stay readable when one becomes the other). On a Cluster the
digest is also the hash tag: `<prefix><kind>:{<sha256>}`. Which keys share a tag, and why:

* Today every operation touches one key, so no operation needs two keys in one slot.
* Keys derived from the same value share its tag whatever their kind, so a future multi-key
  operation about one value (say a refresh-token binding and a record of its rotation, updated
  together in MULTI or a script) finds them in one slot, as Cluster requires.
* Keys of different values get different tags: they spread evenly over the 16384 slots, so
  over every master. Tagging by kind (`{dpop_jti}`) or by prefix would put a whole kind, or
  everything, on one master: no scaling and one hot node. For the same reason the key prefix
  may not contain `{` or `}` with Cluster (a tag in the prefix would win).

Bursts. A healthy Redis never turns a valid request into an error because many came at once
(sidecar/adapters/redis_pipeline.py):

* Warm connections: `warm_up()` (called before the sidecar listens) opens `warm_connections`
  connections (to every master, on a Cluster) and a background task pings the idle ones
  every `keepalive_seconds`, reopening any that was dropped. No request pays a connect.
* Pipelining: the replay checks and binding commands issued within one event-loop iteration
  go out as one non-transactional pipeline (on a Cluster, one per master), at most
  `warm_connections` pipelines at once. A burst of 500 requests costs a few round trips.
* Timeouts measure Redis: a read whose timer expires while the reply is already waiting
  (the loop was busy with other requests) is not timed out. Connects keep redis-py's own
  timer (a busy loop can time one out); the warm connections keep them off the request path.

Failure handling, chosen for bounded latency on the request path:

* Every wait is bounded: connect (`socket_connect_timeout`) and each command
  (`socket_timeout`, counted from the moment the command is written); Sentinel queries use
  the same bounds. A command waits for a pipeline only behind the pipelines in flight, each
  bounded in turn; the pool itself (`max_connections`, `pool_timeout`) is only waited on by
  the warm-up and `/readyz` pings.
* A timeout is never retried (a pipeline's timeout fails every command in it: they shared the
  connection): a retry would multiply the worst-case wait, and a retried
  `SET NX` whose first attempt reached Redis but whose reply was slow answers "already used",
  rejecting a fresh proof as a replay.
* A connection error is retried once, at once, on a fresh connection (redis-py's own Cluster
  retries, which would also retry timeouts, are turned off; the store retries instead). It
  almost always means the command never reached a live server (refused, a pooled socket the
  server closed on a restart or failover, a master Sentinel has just demoted). In the rare case
  where the first attempt was applied, the retry answers "already used": a legitimate proof is
  rejected, never a replay accepted.
* Recovery needs no restart: a closed pooled connection is detected when taken from the pool
  or by the retry above and reconnected; a Cluster client refreshes its slot map after a
  connection error or CLUSTERDOWN; a Sentinel pool asks the sentinels for the master on every
  new connection, and when a master refuses writes (`READONLY`: it was demoted; `NOREPLICAS`:
  with `min-replicas-to-write`, it lost its replicas, typically to a promotion) every pooled
  connection is dropped so the next commands go to whichever master Sentinel names.
* Every failure becomes StoreError, whatever raised it. Its message never contains a stored
  value or binding: transport errors are described by redis-py from the socket (host, port,
  errno); for errors the server sent only the error code (`WRONGTYPE`, `OOM`, `READONLY`...)
  is kept, since a server error text may echo command arguments; others keep their type only.

Sentinel and lost writes. Replication is asynchronous: a write acknowledged by a master that
is then replaced may be missing on the new one, and a `jti` accepted there could be accepted
again on the new master. Measured with Redis 7.0 (tests/adapters/test_redis_deployments.py):

* Crash of the master: no loss seen. Sentinel promotes only after down-after-milliseconds,
  and by then the replica has read every write the master acknowledged (they were sent to it
  with the reply). Exception: a replica that has just finished a full sync gets the stream
  only after its first acknowledgement, up to a second later.
* Planned `SENTINEL FAILOVER`: the old master stays a writable master until Sentinel
  reconfigures it, about ten seconds later, and everything written there meanwhile is lost.
  Run masters with `min-replicas-to-write 1` (and one more replica than that, for
  availability): the old master then refuses writes (`NOREPLICAS`) from the moment its replica
  is promoted, and this store moves to the new master as soon as Sentinel names it. What
  remains is the promotion instant itself: a write acknowledged in the last milliseconds
  before it may not have reached the replica (one write, a few ms before the first refusal,
  in about one run in six). Closing that too would take `WAIT` on every replay check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, Unpack
from urllib.parse import parse_qsl, unquote, urlencode

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.adapters.redis_pipeline import (
    Coalescer,
    FairConnection,
    FairSentinelConnection,
    FairSentinelSSLConnection,
    FairSSLConnection,
    Queue,
    run_on_cluster,
    run_pipeline,
)
from sidecar.ports import StoreError, store_key
from sidecar.settings import StoreSettings

T = TypeVar("T")
log = logging.getLogger("token_sidecar.store")
Deployment = Literal["standalone", "sentinel", "cluster"]

STANDALONE_SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SCHEMES = (*STANDALONE_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, SENTINEL_SCHEME: 26379, CLUSTER_SCHEME: 6379}

DEFAULT_SOCKET_CONNECT_TIMEOUT = 0.1
DEFAULT_SOCKET_TIMEOUT = 0.1
DEFAULT_POOL_TIMEOUT = 0.1
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_CLIENT_NAME = "token-sidecar"
DEFAULT_WARM_CONNECTIONS = 8
DEFAULT_KEEPALIVE_SECONDS = 10.0
_WARM_UP_ATTEMPTS = 5
_WARM_UP_PAUSE_SECONDS = 0.1

_TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
# Server replies meaning "this is not (or no longer) a writable master": a Sentinel store then
# drops its pooled connections, so that new ones ask the sentinels where the master is now.
_NOT_A_MASTER = ("READONLY", "NOREPLICAS", "MASTERDOWN")
_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_QUERY_NAME = re.compile(r"[a-z_]{1,40}")
# What redis-py reads from a redis:// query string (anything else would reach its Connection
# as an unknown argument and fail every command).
_STANDALONE_QUERY = (*URL_QUERY_ARGUMENT_PARSERS, "client_name")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


# ---------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed `store.url` (the password is never shown by repr)."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service_name: str | None = None  # redis+sentinel://
    db: int = 0
    tls: bool = False
    # Standalone only: query options handed to redis-py as they are (`?socket_timeout=0.5`).
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def deployment(self) -> Deployment:
        if self.scheme == SENTINEL_SCHEME:
            return "sentinel"
        if self.scheme == CLUSTER_SCHEME:
            return "cluster"
        return "standalone"


def url_scheme(url: str) -> str:
    """The scheme of `url`, lower-cased ('' when there is none)."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return match.group(1).lower() if match else ""


def parse_url(url: str) -> RedisURL:
    """Parse a `store.url` of any Redis scheme, or raise ValueError naming `store.url`.

    No message quotes any part of the URL but its scheme and query parameter names.
    """
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        raise ValueError(f"store.url: the scheme must be one of {', '.join(SCHEMES)}")
    rest = url[len(scheme) + 3:]
    # The user part runs to the last "@": the password may contain "@", "/", "?" or "#".
    userinfo, at, rest = rest.rpartition("@")
    if "#" in rest:
        raise ValueError("store.url: a fragment (#...) is not allowed")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    hosts = _parse_hosts(netloc, scheme)
    username, password = _parse_userinfo(userinfo) if at else (None, None)
    params = _parse_query(query, scheme)
    parsed = RedisURL(scheme, hosts, username, password)

    if scheme in STANDALONE_SCHEMES:
        if len(hosts) > 1:
            raise ValueError(f"store.url: {scheme}:// takes one host; for several use "
                             "redis+sentinel:// or redis+cluster://")
        if path and not _PORT.fullmatch(path):
            raise ValueError("store.url: the path must be a database number, as in /0")
        return replace(parsed, db=int(path or 0), tls=scheme == "rediss",
                       options=tuple(params.items()))

    tls = _flag(params.get("tls", "false"))
    if scheme == SENTINEL_SCHEME:
        service = unquote(path)
        if not service or "/" in service:
            raise ValueError("store.url: redis+sentinel:// needs the service name as its path, "
                             "as in redis+sentinel://host:26379/mymaster")
        db = params.get("db", "0")
        if not _PORT.fullmatch(db):
            raise ValueError("store.url: the db query parameter must be a database number")
        return replace(parsed, service_name=service, db=int(db), tls=tls)

    if path:
        raise ValueError("store.url: redis+cluster:// takes no path (a Cluster has only "
                         "database 0)")
    return replace(parsed, tls=tls)


def _parse_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, has_password, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if has_password and password else None)


def _parse_hosts(netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    if not netloc:
        raise ValueError("store.url: no host")
    items = netloc.split(",")
    hosts: list[tuple[str, int]] = []
    for number, item in enumerate(items, 1):
        where = f"store.url: host {number} of {len(items)}"
        if item.startswith("["):
            host, closed, after = item[1:].partition("]")
            if not closed:
                raise ValueError(f"{where}: '[' without ']'")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{where}: not an IPv6 address inside [...]") from None
            if after and not after.startswith(":"):
                raise ValueError(f"{where}: expected ':port' after ']'")
            port = after[1:] if after else None
        else:
            if item.count(":") > 1:
                raise ValueError(f"{where}: an IPv6 address must be in brackets, as in "
                                 "[::1]:6379")
            host, has_port, port_text = item.partition(":")
            port = port_text if has_port else None
            if not host:
                raise ValueError(f"{where}: empty host name")
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"{where}: not a valid host name or IPv4 address")
        if port is None:
            hosts.append((host, DEFAULT_PORTS[scheme]))
        elif _PORT.fullmatch(port) and 0 < int(port) < 65536:
            hosts.append((host, int(port)))
        else:
            raise ValueError(f"{where}: the port must be a number from 1 to 65535")
    return tuple(hosts)


def _parse_query(query: str, scheme: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("store.url: the query string is not name=value pairs") from None
    known = {SENTINEL_SCHEME: ("db", "tls"), CLUSTER_SCHEME: ("tls",)}.get(
        scheme, _STANDALONE_QUERY)
    params: dict[str, str] = {}
    for name, value in pairs:
        shown = repr(name) if _QUERY_NAME.fullmatch(name) else "a query parameter"
        if name in params:
            raise ValueError(f"store.url: {shown} is given twice")
        if name not in known:
            raise ValueError(f"store.url: unknown query parameter {shown} for {scheme}:// "
                             f"(known: {', '.join(known)})")
        params[name] = value
    return params


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError("store.url: tls must be true or false")


# ---------------------------------------------------------------------------------------
# Options and clients


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisOptions:
    """How to connect, for every deployment (a password is never shown by repr)."""

    socket_connect_timeout: float = DEFAULT_SOCKET_CONNECT_TIMEOUT
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    client_name: str | None = DEFAULT_CLIENT_NAME
    warm_connections: int = DEFAULT_WARM_CONNECTIONS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class RedisOptionArgs(TypedDict, total=False):
    """RedisOptions as keyword arguments (RedisStore's constructors take them)."""

    socket_connect_timeout: float
    socket_timeout: float
    max_connections: int
    pool_timeout: float
    client_name: str | None
    warm_connections: int
    keepalive_seconds: float
    username: str | None
    password: str | None
    sentinel_password: str | None
    ssl_ca_certs: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None


def _merge_credentials(url: RedisURL, options: RedisOptions) -> RedisOptions:
    if url.password and options.password:
        raise ValueError("store.url carries a password and store.password_file is set: "
                         "give the password in one place")
    if url.username and options.username and url.username != options.username:
        raise ValueError("store.url and store.username name different users")
    if options.sentinel_password and url.scheme != SENTINEL_SCHEME:
        raise ValueError("store.sentinel_password_file is only for redis+sentinel://")
    tls_files = {"store.tls_ca_file": options.ssl_ca_certs,
                 "store.tls_cert_file": options.ssl_certfile,
                 "store.tls_key_file": options.ssl_keyfile}
    if not url.tls:
        for name, value in tls_files.items():
            if value:
                raise ValueError(f"{name} is set but store.url does not use TLS (use "
                                 "rediss://, or tls=true for Sentinel and Cluster)")
    else:
        _check_tls_files(options)
    return replace(options, username=options.username or url.username,
                   password=options.password or url.password)


def _check_tls_files(options: RedisOptions) -> None:
    """Load the TLS files once at start, so that a wrong path fails `check-config`, not every
    request. An encrypted key is refused here (OpenSSL would prompt for its passphrase)."""
    if options.ssl_keyfile and not options.ssl_certfile:
        raise ValueError("store.tls_key_file is set without store.tls_cert_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if options.ssl_ca_certs:
        try:
            context.load_verify_locations(cafile=options.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"store.tls_ca_file: cannot load {options.ssl_ca_certs!r}: "
                             f"{_reason(exc)}") from None
    if options.ssl_certfile:
        try:
            context.load_cert_chain(options.ssl_certfile, options.ssl_keyfile,
                                    password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            raise ValueError("store.tls_cert_file/store.tls_key_file: cannot load the client "
                             f"certificate and its unencrypted key: {_reason(exc)}") from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or getattr(exc, "reason", None) or type(exc).__name__


def _connect_retry() -> Retry:
    """One immediate retry on a connection error, none on a timeout (module docstring)."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _tls_kwargs(options: RedisOptions) -> dict[str, Any]:
    return {
        "ssl_ca_certs": options.ssl_ca_certs,
        "ssl_certfile": options.ssl_certfile,
        "ssl_keyfile": options.ssl_keyfile,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _standalone_client(url: RedisURL, options: RedisOptions) -> Redis:
    host, port = url.hosts[0]
    # The credentials go as arguments, not in the URL handed to redis-py.
    plain = f"{url.scheme}://{_bracketed(host)}:{port}/{url.db}"
    if url.options:
        plain += "?" + urlencode(url.options)
    kwargs: dict[str, Any] = _tls_kwargs(options) if url.tls else {}
    pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
        plain, **_pool_kwargs(options), **kwargs)
    # from_url picks the class from the scheme; the same, with reads that measure Redis.
    pool.connection_class = FairSSLConnection if url.tls else FairConnection
    # from_pool: the client owns the pool, so closing the client closes the pool.
    return Redis.from_pool(pool)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's SentinelConnectionPool (every new connection asks the sentinels for the
    master) with BlockingConnectionPool's bounded wait for a free connection: a burst beyond
    `max_connections` waits up to the pool timeout instead of failing at once."""


def _sentinel_clients(url: RedisURL, options: RedisOptions) -> tuple[Redis, Sentinel]:
    assert url.service_name is not None
    tls: dict[str, Any] = {"ssl": True, **_tls_kwargs(options)} if url.tls else {}
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_timeout": options.socket_timeout,
        "retry": _connect_retry(),
        "max_connections": options.max_connections,
        "password": options.sentinel_password,
        **tls,
    }
    sentinel = Sentinel(list(url.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(
        url.service_name, connection_pool_class=_BlockingSentinelPool, db=url.db,
        connection_class=FairSentinelSSLConnection if url.tls else FairSentinelConnection,
        **_pool_kwargs(options), **tls)
    return client, sentinel


def _pool_kwargs(options: RedisOptions) -> dict[str, Any]:
    """The connection-pool options standalone and Sentinel masters share: credentials and
    every bounded wait (connect, command, a free connection)."""
    return {
        "username": options.username,
        "password": options.password,
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_timeout": options.socket_timeout,
        "retry": _connect_retry(),
        "max_connections": options.max_connections,
        "timeout": options.pool_timeout,
        "client_name": options.client_name,
    }


def _cluster_client(url: RedisURL, options: RedisOptions) -> RedisCluster:
    tls: dict[str, Any] = {"ssl": True, **_tls_kwargs(options)} if url.tls else {}
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.hosts],
        # No cluster-level retries (they would retry timeouts too); see the module docstring.
        retry=Retry(NoBackoff(), 0),
        # A MOVED reply patches that slot's owner. The default (5) also closes the whole
        # client every fifth MOVED, cutting the connections of every command in flight.
        reinitialize_steps=0,
        max_connections=options.max_connections,
        username=options.username,
        password=options.password,
        client_name=options.client_name,
        socket_connect_timeout=options.socket_connect_timeout,
        socket_timeout=options.socket_timeout,
        **tls,
    )
    # RedisCluster takes no connection class: its nodes, present and future, read it from
    # the keyword arguments they are made with (one dict, shared with the nodes manager).
    fair = FairSSLConnection if url.tls else FairConnection
    client.connection_kwargs["connection_class"] = fair
    for node in client.startup_nodes:
        node.connection_class = fair
    return client


# ---------------------------------------------------------------------------------------
# The store


class RedisStore:
    """A ReplayStore over one redis-py client: standalone Redis, Sentinel or Cluster.

    `RedisStore(url, prefix, ...)` builds a standalone store (`redis://`, `rediss://`);
    `RedisStore.from_url` takes any Redis scheme; `RedisStore.from_settings` reads
    `[store]` (password files, TLS files, bounds). Nothing connects before `warm_up()` or
    the first call.
    """

    prefix: str
    deployment: Deployment
    _client: Redis | RedisCluster

    def __init__(self, url: str, prefix: str, **options: Unpack[RedisOptionArgs]) -> None:
        scheme = url_scheme(url)
        if scheme not in STANDALONE_SCHEMES:
            # The URL is not echoed: it may carry a password.
            raise ValueError(f"RedisStore(url) needs a redis:// or rediss:// URL, got "
                             f"{scheme}://; use RedisStore.from_url for Sentinel and Cluster")
        self._open(parse_url(url), prefix, RedisOptions(**options))

    @classmethod
    def from_url(cls, url: str, prefix: str, **options: Unpack[RedisOptionArgs]) -> RedisStore:
        """A store for a URL of any Redis scheme (see the module docstring)."""
        store = cls.__new__(cls)
        store._open(parse_url(url), prefix, RedisOptions(**options))
        return store

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisStore:
        """A store for `[store]`: `url`, `key_prefix`, the timeouts, `max_connections`,
        `username`, the password files (one trailing newline stripped) and the TLS files."""
        store = cls.__new__(cls)
        store._open(parse_url(settings.url), settings.key_prefix, _options_from(settings))
        return store

    @staticmethod
    def check_settings(settings: StoreSettings) -> None:
        """Raise the ValueError `from_settings` would raise (URL, files, key prefix), without
        creating a client: for `check-config`."""
        url = parse_url(settings.url)
        _merge_credentials(url, _options_from(settings))
        _check_prefix(url, settings.key_prefix)

    def _open(self, url: RedisURL, prefix: str, options: RedisOptions) -> None:
        options = _merge_credentials(url, options)
        _check_prefix(url, prefix)
        self.prefix = prefix
        self.deployment = url.deployment
        self._sentinel: Sentinel | None = None
        if url.deployment == "cluster":
            self._client = _cluster_client(url, options)
        elif url.deployment == "sentinel":
            self._client, self._sentinel = _sentinel_clients(url, options)
        else:
            self._client = _standalone_client(url, options)
        self._warm = min(options.warm_connections, options.max_connections)
        self._keepalive_seconds = options.keepalive_seconds
        self._keepalive: asyncio.Task[None] | None = None
        self._coalescer = Coalescer(self._run_batch, max_batches=self._warm)

    def key(self, kind: str, value: str) -> str:
        """The Redis key for `value` of `kind` (module docstring: "Keys")."""
        if self.deployment != "cluster":
            return store_key(self.prefix, kind, value)
        return cluster_key(self.prefix, kind, value)

    # -- ReplayStore ---------------------------------------------------------------------

    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        key = self.key(kind, value)
        ttl_ms = _ttl_ms(ttl_seconds)
        # Atomic on the server, in a pipeline as alone: OK when the key was absent, else nil.
        created = await self._queued("first_use", kind, key,
                                     lambda pipe: pipe.set(key, b"1", nx=True, px=ttl_ms))
        return bool(created)

    async def get_binding(self, kind: str, value: str) -> str | None:
        key = self.key(kind, value)
        raw = await self._queued("get_binding", kind, key, lambda pipe: pipe.get(key))
        if raw is None:
            return None
        if not isinstance(raw, bytes):
            raise StoreError(f"redis get_binding({kind}): unexpected reply type")
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise StoreError(f"redis get_binding({kind}): the binding is not UTF-8") from None

    async def set_binding(self, kind: str, value: str, bound_to: str, ttl_seconds: float) -> None:
        key = self.key(kind, value)
        ttl_ms = _ttl_ms(ttl_seconds)
        data = bound_to.encode("utf-8", "surrogatepass")
        await self._queued("set_binding", kind, key,
                           lambda pipe: pipe.set(key, data, px=ttl_ms))

    async def delete_binding(self, kind: str, value: str) -> None:
        key = self.key(kind, value)
        await self._call("delete_binding", kind, lambda: self._client.delete(key))

    async def ping(self) -> None:
        """Every master answers (on a Cluster, each one holds a share of the keys)."""
        client = self._client
        if isinstance(client, RedisCluster):
            await self._call("ping", None, lambda: client.ping(target_nodes=client.PRIMARIES))
        else:
            await self._call("ping", None, client.ping)

    async def warm_up(self) -> None:
        """Open the warm connections now (module docstring: "Bursts") and keep them open from
        here on. A Redis that is down is no error here: the first commands connect.

        A connect that times out is tried again, a few times: at start the machine is busy
        (other replicas starting) and a request must not pay for that."""
        error = await self._open_warm_connections()
        for _ in range(_WARM_UP_ATTEMPTS - 1):
            if error is None:
                break
            await asyncio.sleep(_WARM_UP_PAUSE_SECONDS)
            error = await self._open_warm_connections()
        if error is not None:
            # Not a request's failure: the next commands connect as they would have anyway.
            log.warning("redis warm-up: %s", _store_error("warm_up", None, error))
        if self._keepalive is None:
            self._keepalive = asyncio.get_running_loop().create_task(self._keep_warm())

    async def close(self) -> None:
        """Close the client and every pooled connection (and the Sentinel clients)."""
        client = self._client
        if self._keepalive is not None:
            self._keepalive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keepalive
        await self._coalescer.aclose()
        try:
            await client.aclose()
            if isinstance(client, RedisCluster):
                # aclose() skips a client whose slot map is marked stale (after a connection
                # error), leaving its nodes' connections open: close them all the same.
                await client.nodes_manager.aclose()
                await client.nodes_manager.aclose("startup_nodes")
        finally:
            if self._sentinel is not None:
                await self._sentinel.aclose()

    # -- internals -----------------------------------------------------------------------

    async def _queued(self, operation: str, kind: str, key: str, queue: Queue) -> Any:
        """A command that joins the current pipeline (module docstring: "Bursts")."""
        return await self._call(operation, kind, lambda: self._coalescer.submit(key, queue))

    async def _run_batch(self, batch: list[Any]) -> None:
        client = self._client
        if isinstance(client, RedisCluster):
            await run_on_cluster(client, batch)
        else:
            await run_pipeline(client, batch)

    async def _call(self, operation: str, kind: str | None,
                    command: Callable[[], Awaitable[T]]) -> T:
        try:
            if not isinstance(self._client, RedisCluster):
                return await command()
            try:
                return await self._on_cluster(command)
            except MaxConnectionsError:
                raise
            except RedisConnectionError:
                # The client has marked its slot map stale; the retry refreshes it.
                return await self._on_cluster(command)
        except (RedisError, RedisClusterException, OSError) as exc:
            if self._sentinel is not None and _error_code(exc) in _NOT_A_MASTER:
                await self._reconnect_all()
            raise _store_error(operation, kind, exc) from _cause(exc)
        except Exception as exc:
            # Not expected from redis-py; kept to the type, since its text is unknown.
            raise StoreError(f"{_where(operation, kind)}: unexpected {type(exc).__name__}"
                             ) from None

    async def _on_cluster(self, command: Callable[[], Awaitable[T]]) -> T:
        client = self._client
        assert isinstance(client, RedisCluster)
        # Load the slot map first (a no-op once loaded): a RedisCluster that has none yet,
        # at start or after a refresh, sends a keyed command to a random master (redis-py
        # picks the route before loading the map), which costs a MOVED round trip.
        await client.initialize()
        return await command()

    async def _open_warm_connections(self) -> Exception | None:
        """Open (or ping) the warm connections; the first failure, if any."""
        client = self._client
        try:
            if isinstance(client, RedisCluster):
                await client.initialize()
                await asyncio.gather(*(_ping_connections(node, self._warm)
                                       for node in client.get_primaries()))
            else:
                await _ping_pooled(client, self._warm)
        except Exception as exc:
            return exc
        return None

    async def _keep_warm(self) -> None:
        while True:
            await asyncio.sleep(self._keepalive_seconds)
            if not self._coalescer.busy:  # under traffic, the connections are warm already
                await self._open_warm_connections()

    async def _reconnect_all(self) -> None:
        """Make every pooled connection reconnect, so each asks the sentinels for the master:
        idle ones now, busy ones when they come back to the pool."""
        client = self._client
        if isinstance(client, Redis):
            with contextlib.suppress(Exception):
                pool = client.connection_pool
                await pool.update_active_connections_for_reconnect()  # type: ignore[no-untyped-call]
                await pool.disconnect(inuse_connections=False)


async def _ping_pooled(client: Redis, count: int) -> None:
    """Hold `count` pooled connections at once (so the pool opens that many) and ping each."""
    pool = client.connection_pool
    held = await asyncio.gather(*(pool.get_connection()  # type: ignore[no-untyped-call]
                                  for _ in range(count)),
                                return_exceptions=True)
    try:
        connections = [c for c in held if not isinstance(c, BaseException)]
        await asyncio.gather(*(_ping(c) for c in connections))
        errors = [e for e in held if isinstance(e, Exception)]
        if errors:
            raise errors[0]
    finally:
        for connection in held:
            if not isinstance(connection, BaseException):
                await pool.release(connection)


async def _ping_connections(node: ClusterNode, count: int) -> None:
    held = []
    try:
        for _ in range(count):
            held.append(node.acquire_connection())
        await asyncio.gather(*(_ping(c) for c in held))
    finally:
        for connection in held:
            node.release(connection)


async def _ping(connection: Any) -> None:
    await connection.send_command("PING")
    await connection.read_response()


def _options_from(settings: StoreSettings) -> RedisOptions:
    return RedisOptions(
        socket_connect_timeout=settings.connect_timeout_seconds,
        socket_timeout=settings.command_timeout_seconds,
        max_connections=settings.max_connections,
        # Waiting for a free connection costs at most one more connect-and-command.
        pool_timeout=settings.connect_timeout_seconds + settings.command_timeout_seconds,
        warm_connections=settings.warm_connections,
        keepalive_seconds=settings.keepalive_seconds,
        username=settings.username or None,
        password=read_secret_file(settings.password_file, "store.password_file"),
        sentinel_password=read_secret_file(settings.sentinel_password_file,
                                           "store.sentinel_password_file"),
        ssl_ca_certs=settings.tls_ca_file or None,
        ssl_certfile=settings.tls_cert_file or None,
        ssl_keyfile=settings.tls_key_file or None,
    )


def _check_prefix(url: RedisURL, prefix: str) -> None:
    if url.deployment == "cluster" and ("{" in prefix or "}" in prefix):
        raise ValueError("store.key_prefix: '{' and '}' are not allowed with redis+cluster:// "
                         "(a hash tag in the prefix would put every key in one slot)")


def cluster_key(prefix: str, kind: str, value: str) -> str:
    """`<prefix><kind>:{<sha256(value)>}`: `store_key` with the digest as the hash tag, so the
    keys of one value share a slot and keys of different values spread over all of them."""
    if "{" in kind or "}" in kind:
        raise ValueError(f"a store kind may not contain '{{' or '}}': {kind!r}")
    head, _, digest = store_key(prefix, kind, value).rpartition(":")
    return f"{head}:{{{digest}}}"


def read_secret_file(path: str, name: str) -> str | None:
    """The secret in `path` without its trailing newline; None when `path` is empty."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path!r} is not UTF-8 text") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{name}: {path!r} is empty")
    return secret


def _ttl_ms(ttl_seconds: float) -> int:
    """Milliseconds for `PX`, rounded up and at least 1 (Redis rejects `PX 0`)."""
    if not math.isfinite(ttl_seconds):
        raise ValueError(f"ttl_seconds must be finite, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))


def _where(operation: str, kind: str | None) -> str:
    return f"redis {operation}({kind})" if kind is not None else f"redis {operation}"


def _store_error(operation: str, kind: str | None, exc: BaseException) -> StoreError:
    where = _where(operation, kind)
    if isinstance(exc, _TRANSPORT_ERRORS):
        # Written by redis-py or the OS about the socket: host, port, errno. No arguments.
        detail = str(exc) or "no detail"
        return StoreError(f"{where}: {type(exc).__name__}: {detail}")
    if isinstance(exc, RedisClusterException):
        # Its text can quote the command; keep the transport error behind it, if any.
        cause = exc.__cause__
        detail = f": {type(cause).__name__}: {cause}" if isinstance(
            cause, _TRANSPORT_ERRORS) else ""
        return StoreError(f"{where}: {type(exc).__name__}{detail}")
    # Sent by the server (or a client-side data error): keep only the error code, because a
    # server error text can echo the command's arguments.
    code = _error_code(exc)
    suffix = f" {code}" if code else ""
    return StoreError(f"{where}: {type(exc).__name__}{suffix}")


def _error_code(exc: BaseException) -> str | None:
    """The server's error code (`WRONGTYPE`, `READONLY`...), which redis-py keeps in
    `status_code` when it maps the code to an exception class, else in the text."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    first = str(exc).split(" ", 1)[0]
    return first if first.isalpha() and first.isupper() else None


def _cause(exc: BaseException) -> BaseException | None:
    """Chain transport errors for their traceback; drop server errors (their text may echo
    arguments)."""
    return exc if isinstance(exc, _TRANSPORT_ERRORS) else None
