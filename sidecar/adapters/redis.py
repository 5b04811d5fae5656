"""`redis://` and `rediss://`: the store shared by every replica (standalone Redis).

A replay check is one atomic command, `SET <key> 1 NX PX <ttl_ms>`: of two replicas that see
the same value at the same instant, exactly one gets OK. Keys are `store_key(prefix, kind,
value)`, so values are hashed before they reach Redis.

Failure handling, chosen for bounded latency on the request path:

* Every wait is bounded: `pool_timeout` for a free pooled connection (a BlockingConnectionPool
  of `max_connections`, so a burst waits for a connection instead of failing at once, as
  redis-py's plain pool does past its default of 100), `socket_connect_timeout` and
  `socket_timeout` (0.1 s each by default). Values in the URL's query string
  (`?socket_timeout=0.5`) win over these.
* A timeout is never retried (redis-py 6+ retries three times by default): a retry would
  multiply the worst-case wait, and a retried `SET NX` whose first attempt reached Redis but
  whose reply was slow would answer "already used", rejecting a fresh proof as a replay.
* A connection error is retried once, at once, on a fresh connection: it almost always means
  the command never reached a live server (refused, or a pooled socket that Redis closed on a
  restart or failover before the event loop noticed). In the rare case where the first
  attempt was applied, the retry answers "already used": a legitimate proof is rejected,
  never a replay accepted. With Redis down this costs one more refused connect.
* The pool recovers by itself: a pooled connection that Redis closed is detected when taken
  from the pool (or by the retry above) and reconnected; a connection that timed out is
  dropped. Nothing needs to recreate the store.
* Every redis-py or socket error becomes StoreError. Its message never contains a stored value
  or binding: transport errors are described by redis-py from the socket (host, port, errno);
  for errors the server sent, only the error code (`WRONGTYPE`, `OOM`, `READONLY`...) is kept,
  since a server error text may echo command arguments.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.ports import StoreError, store_key

SCHEMES = ("redis", "rediss")
DEFAULT_SOCKET_CONNECT_TIMEOUT = 0.1
DEFAULT_SOCKET_TIMEOUT = 0.1
DEFAULT_POOL_TIMEOUT = 0.1
DEFAULT_MAX_CONNECTIONS = 100

_TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisStore:
    """A ReplayStore over one redis-py connection pool (standalone Redis, TLS or not)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        socket_connect_timeout: float = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        client_name: str | None = "token-sidecar",
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in SCHEMES:
            # The URL is not echoed: it may carry a password.
            raise ValueError(f"RedisStore needs a redis:// or rediss:// URL, got {scheme}://")
        self.prefix = prefix
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            # One immediate retry on a connection error, none on a timeout (module docstring).
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            max_connections=max_connections,
            timeout=pool_timeout,
            client_name=client_name,
        )
        # from_pool: the client owns the pool, so closing the client closes the pool.
        self._client: Redis = Redis.from_pool(pool)

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str,
        *,
        socket_connect_timeout: float = DEFAULT_SOCKET_CONNECT_TIMEOUT,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        pool_timeout: float = DEFAULT_POOL_TIMEOUT,
        client_name: str | None = "token-sidecar",
    ) -> RedisStore:
        return cls(
            url,
            prefix,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            client_name=client_name,
        )

    # -- ReplayStore ---------------------------------------------------------------------

    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        key = store_key(self.prefix, kind, value)
        ttl_ms = _ttl_ms(ttl_seconds)
        try:
            # One round trip, atomic on the server: OK when the key was absent, nil otherwise.
            created = await self._client.set(key, b"1", nx=True, px=ttl_ms)
        except (RedisError, OSError) as exc:
            raise _store_error("first_use", kind, exc) from _cause(exc)
        return bool(created)

    async def get_binding(self, kind: str, value: str) -> str | None:
        key = store_key(self.prefix, kind, value)
        try:
            raw = await self._client.get(key)
        except (RedisError, OSError) as exc:
            raise _store_error("get_binding", kind, exc) from _cause(exc)
        if raw is None:
            return None
        if not isinstance(raw, bytes):
            raise StoreError(f"redis get_binding({kind}): unexpected reply type")
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise StoreError(f"redis get_binding({kind}): the binding is not UTF-8") from None

    async def set_binding(self, kind: str, value: str, bound_to: str, ttl_seconds: float) -> None:
        key = store_key(self.prefix, kind, value)
        ttl_ms = _ttl_ms(ttl_seconds)
        data = bound_to.encode("utf-8", "surrogatepass")
        try:
            await self._client.set(key, data, px=ttl_ms)
        except (RedisError, OSError) as exc:
            raise _store_error("set_binding", kind, exc) from _cause(exc)

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except (RedisError, OSError) as exc:
            raise _store_error("ping", None, exc) from _cause(exc)

    async def close(self) -> None:
        """Close the client and its connection pool (every pooled connection)."""
        await self._client.aclose()


def _ttl_ms(ttl_seconds: float) -> int:
    """Milliseconds for `PX`, rounded up and at least 1 (Redis rejects `PX 0`)."""
    if not math.isfinite(ttl_seconds):
        raise ValueError(f"ttl_seconds must be finite, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))


def _store_error(operation: str, kind: str | None, exc: BaseException) -> StoreError:
    where = f"redis {operation}({kind})" if kind is not None else f"redis {operation}"
    if isinstance(exc, _TRANSPORT_ERRORS):
        # Written by redis-py or the OS about the socket: host, port, errno. No arguments.
        detail = str(exc) or "no detail"
        return StoreError(f"{where}: {type(exc).__name__}: {detail}")
    # Sent by the server (or a client-side data error): keep only the error code, because a
    # server error text can echo the command's arguments.
    code = getattr(exc, "status_code", None) or _error_code(str(exc))
    suffix = f" {code}" if code else ""
    return StoreError(f"{where}: {type(exc).__name__}{suffix}")


def _error_code(text: str) -> str | None:
    first = text.split(" ", 1)[0]
    return first if first.isalpha() and first.isupper() else None


def _cause(exc: BaseException) -> BaseException | None:
    """Chain transport errors for their traceback; drop server errors (their text may echo
    arguments)."""
    return exc if isinstance(exc, _TRANSPORT_ERRORS) else None
