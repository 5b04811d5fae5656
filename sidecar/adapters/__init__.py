"""The store adapters, chosen by the scheme of `store.url` (SPEC.md "State (the store)")."""

from __future__ import annotations

from urllib.parse import urlsplit

from sidecar.adapters.memory import MemoryStore
from sidecar.adapters.redis import RedisStore
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import StoreSettings

__all__ = ["MemoryStore", "RedisStore", "open_store"]

_NOT_YET = ("redis+sentinel", "redis+cluster")


def open_store(settings: StoreSettings, clock: Clock) -> ReplayStore:
    """The store for `settings.url`: memory://, redis:// or rediss://.

    Raises ValueError for a scheme that is not supported (the URL itself is never echoed:
    it may carry a password).
    """
    scheme = urlsplit(settings.url).scheme
    if scheme == "memory":
        return MemoryStore(settings.memory_max_entries, settings.key_prefix, clock)
    if scheme in ("redis", "rediss"):
        return RedisStore.from_url(settings.url, settings.key_prefix)
    if scheme in _NOT_YET:
        raise ValueError(f"store.url: {scheme}:// is not supported yet")
    raise ValueError(f"store.url: unknown scheme {scheme!r} (memory, redis, rediss)")
