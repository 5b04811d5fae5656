"""Sources of `jwks_uri` keys, the `JwksSource` port (sidecar.ports) implemented.

`CachingJwksSource`: `jwks_uri` documents behind a bounded, TTL cache. An unknown `kid` (or
certificate) causes a refetch, but a URI is never fetched more than once per
`min_refetch_seconds` (one minute by default), whatever clients send: an attacker cannot turn
made-up `kid`s into traffic towards the key server. The HTTP request itself goes through the
`Fetcher` port (`sidecar.adapters.http_fetch` in production). It holds state - the cache, one
lock per URI - which is why it is an adapter, not part of the pure core.

`StaticJwksSource`: fixed sets, for tests and `check-config`, where nothing may be fetched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.jose.key_sets import JwkEntry, JwksError, parse_jwks
from sidecar.ports import Clock, Fetcher, FetchError


@dataclass(frozen=True, slots=True)
class _Cached:
    keys: tuple[JwkEntry, ...] | None  # the last good set, if any
    fetched_at: float  # when `keys` was fetched
    attempted_at: float  # when a fetch was last started, successful or not
    error: str = ""  # why the last attempt failed, "" when it succeeded


class CachingJwksSource:
    """`JwksSource` over a `Fetcher`: bounded LRU of sets by URI, with a TTL.

    - fresh (younger than `ttl_seconds`) and holding the asked `kid`: served from memory;
    - otherwise fetched again, unless the URI was fetched (or tried) less than
      `min_refetch_seconds` ago: then the cached set is served as it is, and a key it lacks
      stays unknown until the minute is over;
    - a failed fetch keeps serving the last good set for `stale_if_error_seconds` after its
      TTL (a key server outage does not lock every client out at once), then fails.
    One fetch per URI at a time: concurrent requests wait for it rather than start their own.
    """

    def __init__(self, fetcher: Fetcher, clock: Clock, *, ttl_seconds: float = 300.0,
                 min_refetch_seconds: float = 60.0, stale_if_error_seconds: float = 3600.0,
                 max_uris: int = 1024) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self.ttl_seconds = ttl_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.stale_if_error_seconds = stale_if_error_seconds
        self._cache: BoundedCache[str, _Cached] = BoundedCache(max_uris)
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # fetches started, for metrics and tests

    async def keys_for(self, owner: str, jwks_uri: str, kid: str | None = None, *,
                       x5t_s256: str | None = None) -> tuple[JwkEntry, ...]:
        cached = self._usable(jwks_uri, kid, x5t_s256)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(jwks_uri, asyncio.Lock())
        async with lock:
            # Whoever held the lock may have just fetched: look again before fetching.
            cached = self._usable(jwks_uri, kid, x5t_s256)
            if cached is not None:
                return cached
            return await self._fetch(owner, jwks_uri)

    def _usable(self, uri: str, kid: str | None,
                x5t: str | None) -> tuple[JwkEntry, ...] | None:
        """The cached keys when they may be served without a fetch, else None; raises the
        remembered error when the last attempt failed too recently to try again."""
        cached = self._cache.get(uri)
        if cached is None:
            return None
        now = self._clock.now()
        keys = cached.keys
        if keys is not None and now < cached.fetched_at + self.ttl_seconds \
                and _holds(keys, kid, x5t):
            return keys
        if now < cached.attempted_at + self.min_refetch_seconds:
            if keys is not None and self._servable(cached, now):
                return keys
            raise JwksError(cached.error or "the JWKS could not be fetched")
        return None

    def _servable(self, cached: _Cached, now: float) -> bool:
        limit = self.ttl_seconds + (self.stale_if_error_seconds if cached.error else 0.0)
        return now < cached.fetched_at + limit

    async def _fetch(self, owner: str, uri: str) -> tuple[JwkEntry, ...]:
        started = self._clock.now()
        previous = self._cache.get(uri)
        self.fetches += 1
        try:
            keys = parse_jwks(await self._fetcher.get_json(uri), strict=False)
        except (FetchError, JwksError) as exc:
            error = f"jwks_uri of {owner!r}: {exc}"
            if previous is not None and previous.keys is not None:
                stale = _Cached(previous.keys, previous.fetched_at, started, error)
                self._cache.put(uri, stale)
                if self._servable(stale, started):
                    return previous.keys
            else:
                self._cache.put(uri, _Cached(None, 0.0, started, error))
            raise JwksError(error) from None
        self._cache.put(uri, _Cached(keys, started, started))
        return keys


def _holds(keys: Sequence[JwkEntry], kid: str | None, x5t: str | None) -> bool:
    if kid is not None and not any(k.kid == kid for k in keys):
        return False
    return x5t is None or any(k.x5t_s256 == x5t for k in keys)


class StaticJwksSource:
    """A `JwksSource` for when no `jwks_uri` may be fetched (tests, `check-config`)."""

    def __init__(self, sets: Mapping[str, tuple[JwkEntry, ...]] | None = None) -> None:
        self._sets = dict(sets or {})

    async def keys_for(self, owner: str, jwks_uri: str, kid: str | None = None, *,
                       x5t_s256: str | None = None) -> tuple[JwkEntry, ...]:
        keys = self._sets.get(jwks_uri)
        if keys is None:
            raise JwksError(f"jwks_uri of {owner!r}: not available")
        return keys
