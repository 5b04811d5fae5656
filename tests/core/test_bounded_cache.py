"""The bounded LRU cache (sidecar.core.bounded_cache)."""

from __future__ import annotations

from sidecar.core.bounded_cache import BoundedCache, Memo


def test_bounded_cache_evicts_least_recently_used() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_a_memo_keeps_answers_until_full_and_never_a_long_key() -> None:
    calls: list[str] = []

    def upper(key: str) -> str:
        calls.append(key)
        return key.upper()

    memo: Memo[str, str] = Memo(upper, maxsize=2, max_key_chars=4)
    assert (memo("ab", 2), memo("ab", 2)) == ("AB", "AB")
    assert calls == ["ab"]  # the second answer was remembered
    assert memo("x" * 10, 10) == "X" * 10 and len(memo) == 1  # too long to keep
    memo("cd", 2)
    memo("ef", 2)  # full: everything forgotten, then "ef" kept
    assert len(memo) == 1
