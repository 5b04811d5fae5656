"""The store adapters, chosen by the scheme of `store.url` (README "The store")."""

from __future__ import annotations

from sidecar.adapters.memory import MemoryStore
from sidecar.adapters.redis.store import RedisStore
from sidecar.adapters.redis.urls import SCHEMES as REDIS_SCHEMES
from sidecar.adapters.redis.urls import url_scheme
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import StoreSettings

__all__ = ["MemoryStore", "RedisStore", "check_store", "open_store"]

SCHEMES = ("memory", *REDIS_SCHEMES)


def open_store(settings: StoreSettings, clock: Clock) -> ReplayStore:
    """The store for `settings.url`: memory://, redis://, rediss://, redis+sentinel:// or
    redis+cluster:// (see sidecar.adapters.redis). Nothing connects here.

    Raises ValueError for an unknown scheme or a bad Redis URL or file (the URL itself is
    never echoed: it may carry a password).
    """
    scheme = url_scheme(settings.url)
    if scheme == "memory":
        return MemoryStore(settings.memory_max_entries, settings.key_prefix, clock,
                           when_full=settings.memory_when_full)
    if scheme in REDIS_SCHEMES:
        return RedisStore.from_settings(settings)
    raise ValueError(f"store.url: unknown scheme {scheme!r} ({', '.join(SCHEMES)})")


def check_store(settings: StoreSettings) -> None:
    """Raise the ValueError `open_store` would raise for `settings` (scheme, Redis URL, password
    and TLS files, key prefix), without creating a client or connecting: for `check-config`."""
    scheme = url_scheme(settings.url)
    if scheme in REDIS_SCHEMES:
        RedisStore.check_settings(settings)
    elif scheme != "memory":
        raise ValueError(f"store.url: unknown scheme {scheme!r} ({', '.join(SCHEMES)})")
