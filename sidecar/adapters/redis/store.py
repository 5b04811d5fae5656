"""`RedisStore`: the ReplayStore over one redis-py client, standalone, Sentinel or Cluster
(the package docstring says how it behaves under bursts and failures)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, Unpack

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, RedisClusterException, RedisError

from sidecar.adapters.redis.batches import run_commands, run_on_cluster
from sidecar.adapters.redis.clients import (
    cluster_client,
    ping_connections,
    ping_pooled,
    sentinel_clients,
    standalone_client,
)
from sidecar.adapters.redis.errors import (
    NOT_A_MASTER,
    chained_cause,
    error_code,
    operation_name,
    store_error,
)
from sidecar.adapters.redis.keys import check_prefix, cluster_key
from sidecar.adapters.redis.options import (
    RedisOptionArgs,
    RedisOptions,
    merge_credentials,
    options_from,
)
from sidecar.adapters.redis.pipeline import Coalescer, Command
from sidecar.adapters.redis.urls import (
    STANDALONE_SCHEMES,
    Deployment,
    RedisURL,
    parse_url,
    url_scheme,
)
from sidecar.ports import StoreError, store_key
from sidecar.settings import StoreSettings

T = TypeVar("T")
log = logging.getLogger("token_sidecar.store")


_WARM_UP_ATTEMPTS = 5
_WARM_UP_PAUSE_SECONDS = 0.1


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
        """A store for a URL of any Redis scheme (see the package docstring)."""
        store = cls.__new__(cls)
        store._open(parse_url(url), prefix, RedisOptions(**options))
        return store

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisStore:
        """A store for `[store]`: `url`, `key_prefix`, the timeouts, `max_connections`,
        `username`, the password files (one trailing newline stripped) and the TLS files."""
        store = cls.__new__(cls)
        store._open(parse_url(settings.url), settings.key_prefix, options_from(settings))
        return store

    @staticmethod
    def check_settings(settings: StoreSettings) -> None:
        """Raise the ValueError `from_settings` would raise (URL, files, key prefix), without
        creating a client: for `check-config`."""
        url = parse_url(settings.url)
        merge_credentials(url, options_from(settings))
        check_prefix(url, settings.key_prefix)

    def _open(self, url: RedisURL, prefix: str, options: RedisOptions) -> None:
        options = merge_credentials(url, options)
        check_prefix(url, prefix)
        self.prefix = prefix
        self.deployment = url.deployment
        self._sentinel: Sentinel | None = None
        if url.deployment == "cluster":
            self._client = cluster_client(url, options)
        elif url.deployment == "sentinel":
            self._client, self._sentinel = sentinel_clients(url, options)
        else:
            self._client = standalone_client(url, options)
        # Fast path: known once. `isinstance(x, RedisCluster)` goes through typing's Protocol
        # check (redis-py's command mixins), several microseconds, twice a command.
        self._cluster = self._client if isinstance(self._client, RedisCluster) else None
        self._master = None if isinstance(self._client, RedisCluster) else self._client
        self._warm = min(options.warm_connections, options.max_connections)
        self._keepalive_seconds = options.keepalive_seconds
        self._keepalive: asyncio.Task[None] | None = None
        self._coalescer = Coalescer(self._run_batch, max_batches=self._warm)

    def key(self, kind: str, value: str) -> str:
        """The Redis key for `value` of `kind` (package docstring: "Keys")."""
        if self.deployment != "cluster":
            return store_key(self.prefix, kind, value)
        return cluster_key(self.prefix, kind, value)

    # -- ReplayStore ---------------------------------------------------------------------

    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        key = self.key(kind, value)
        ttl_ms = _ttl_ms(ttl_seconds)
        # Atomic on the server, in a pipeline as alone: OK when the key was absent, else nil.
        created = await self._queued("first_use", kind, key,
                                     ("SET", key, b"1", "NX", "PX", ttl_ms))
        return bool(created)

    async def get_binding(self, kind: str, value: str) -> str | None:
        key = self.key(kind, value)
        raw = await self._queued("get_binding", kind, key, ("GET", key))
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
        await self._queued("set_binding", kind, key, ("SET", key, data, "PX", ttl_ms))

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
        """Open the warm connections now (package docstring: "Bursts") and keep them open from
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
            log.warning("redis warm-up: %s", store_error("warm_up", None, error))
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

    async def _queued(self, operation: str, kind: str, key: str, command: Command) -> Any:
        """A command that joins the current pipeline (package docstring: "Bursts")."""
        return await self._call(operation, kind, lambda: self._coalescer.submit(key, command))

    async def _run_batch(self, batch: list[Any]) -> None:
        if self._master is not None:
            await run_commands(self._master, batch)
        elif self._cluster is not None:
            await run_on_cluster(self._cluster, batch)

    async def _call(self, operation: str, kind: str | None,
                    command: Callable[[], Awaitable[T]]) -> T:
        try:
            if self._cluster is None:
                return await command()
            try:
                return await self._on_cluster(command)
            except MaxConnectionsError:
                raise
            except RedisConnectionError:
                # The client has marked its slot map stale; the retry refreshes it.
                return await self._on_cluster(command)
        except (RedisError, RedisClusterException, OSError) as exc:
            if self._sentinel is not None and error_code(exc) in NOT_A_MASTER:
                await self._reconnect_all()
            raise store_error(operation, kind, exc) from chained_cause(exc)
        except Exception as exc:
            # Not expected from redis-py; kept to the type, since its text is unknown.
            raise StoreError(f"{operation_name(operation, kind)}: unexpected {type(exc).__name__}"
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
                await asyncio.gather(*(ping_connections(node, self._warm)
                                       for node in client.get_primaries()))
            else:
                await ping_pooled(client, self._warm)
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


def _ttl_ms(ttl_seconds: float) -> int:
    """Milliseconds for `PX`, rounded up and at least 1 (Redis rejects `PX 0`)."""
    if not math.isfinite(ttl_seconds):
        raise ValueError(f"ttl_seconds must be finite, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))
