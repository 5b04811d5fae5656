"""The bounded LRU cache (sidecar.core.bounded_cache)."""

from __future__ import annotations

from sidecar.core.bounded_cache import BoundedCache


def test_bounded_cache_evicts_least_recently_used() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2
