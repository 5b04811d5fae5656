"""MemoryStore: replay checks, bindings, expiry on the injected clock, bounded size."""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc

import pytest

from sidecar.adapters import MemoryStore, open_store
from sidecar.ports import StoreFullError
from sidecar.settings import StoreSettings
from tests.support.fakes import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(max_entries=1000, prefix="t:", clock=clock)


async def test_first_use_then_replay(store: MemoryStore) -> None:
    assert await store.first_use("dpop_jti", "jti-1", 60) is True
    assert await store.first_use("dpop_jti", "jti-1", 60) is False
    assert await store.first_use("dpop_jti", "jti-2", 60) is True


async def test_kinds_do_not_collide(store: MemoryStore) -> None:
    assert await store.first_use("dpop_jti", "same", 60) is True
    assert await store.first_use("client_assertion_jti", "same", 60) is True
    assert await store.first_use("client_assertion_jti", "same", 60) is False


async def test_value_usable_again_after_ttl(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.first_use("dpop_jti", "jti", 60) is True
    clock.advance(59)
    assert await store.first_use("dpop_jti", "jti", 60) is False
    clock.advance(1)
    assert await store.first_use("dpop_jti", "jti", 60) is True
    assert await store.first_use("dpop_jti", "jti", 60) is False


async def test_a_replay_does_not_extend_the_ttl(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.first_use("dpop_jti", "jti", 60) is True
    clock.advance(30)
    assert await store.first_use("dpop_jti", "jti", 60) is False
    clock.advance(30)
    assert await store.first_use("dpop_jti", "jti", 60) is True


async def test_zero_or_negative_ttl_expires_at_once(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.first_use("dpop_jti", "jti", 0) is True
    clock.advance(0.001)
    assert await store.first_use("dpop_jti", "jti", -5) is True


async def test_non_finite_ttl_is_refused(store: MemoryStore) -> None:
    with pytest.raises(ValueError, match="finite"):
        await store.first_use("dpop_jti", "jti", float("inf"))
    with pytest.raises(ValueError, match="finite"):
        await store.set_binding("refresh", "rt", "jkt", float("nan"))


async def test_bindings(store: MemoryStore, clock: FakeClock) -> None:
    assert await store.get_binding("refresh", "rt-1") is None
    await store.set_binding("refresh", "rt-1", "jkt-A", 3600)
    assert await store.get_binding("refresh", "rt-1") == "jkt-A"
    assert await store.get_binding("refresh", "rt-2") is None
    await store.set_binding("refresh", "rt-1", "jkt-B", 3600)  # overwrite
    assert await store.get_binding("refresh", "rt-1") == "jkt-B"
    clock.advance(3599)
    assert await store.get_binding("refresh", "rt-1") == "jkt-B"
    clock.advance(1)
    assert await store.get_binding("refresh", "rt-1") is None


async def test_overwriting_a_binding_renews_its_ttl(store: MemoryStore, clock: FakeClock) -> None:
    await store.set_binding("refresh", "rt", "jkt", 100)
    clock.advance(90)
    await store.set_binding("refresh", "rt", "jkt", 100)
    clock.advance(90)
    assert await store.get_binding("refresh", "rt") == "jkt"


async def test_values_are_not_kept_in_clear(store: MemoryStore) -> None:
    token = "refresh-token-secret-value"
    await store.set_binding("refresh", token, "jkt", 60)
    await store.first_use("dpop_jti", "jti-secret-value", 60)
    keys = list(store._entries)
    assert keys
    assert all(token not in k and "jti-secret-value" not in k for k in keys)


async def test_concurrent_first_use_of_one_value_wins_once(store: MemoryStore) -> None:
    results = await asyncio.gather(*(store.first_use("dpop_jti", "jti", 60) for _ in range(200)))
    assert results.count(True) == 1
    assert results.count(False) == 199


async def test_bounded_under_a_flood_of_unique_values(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=1000, prefix="t:", clock=clock)
    for i in range(100_000):
        assert await store.first_use("dpop_jti", f"jti-{i}", 60) is True
        assert len(store) <= 1000
    assert len(store) == 1000
    # Nothing expired (the clock stood still): every extra entry evicted one, and is counted.
    assert store.evictions == 99_000
    # The most recent values are still known, the oldest were evicted (the trade-off).
    assert await store.first_use("dpop_jti", "jti-99999", 60) is False
    assert await store.first_use("dpop_jti", "jti-0", 60) is True


async def test_expired_entries_make_room_before_any_eviction(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=1000, prefix="t:", clock=clock)
    for i in range(100_000):
        await store.first_use("dpop_jti", f"jti-{i}", 1.0)
        clock.advance(0.002)  # 500 entries per TTL: never full if expired ones are dropped
    assert len(store) <= 1000
    assert store.evictions == 0


async def test_eviction_picks_the_entry_closest_to_expiry(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=3, prefix="t:", clock=clock)
    await store.set_binding("refresh", "rt", "jkt", 30 * 86400)  # oldest, but long-lived
    await store.first_use("dpop_jti", "a", 60)
    clock.advance(1)
    await store.first_use("dpop_jti", "b", 60)
    clock.advance(1)
    await store.first_use("dpop_jti", "c", 60)  # full: evicts "a", closest to expiry
    assert store.evictions == 1
    assert await store.get_binding("refresh", "rt") == "jkt"
    assert await store.first_use("dpop_jti", "b", 60) is False
    assert await store.first_use("dpop_jti", "c", 60) is False
    assert await store.first_use("dpop_jti", "a", 60) is True  # forgotten: a replay gets in
    assert store.evictions == 2


async def test_evictions_are_logged_at_most_once_a_minute(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(max_entries=1, prefix="t:", clock=clock)
    caplog.set_level(logging.WARNING, "token_sidecar.store")
    for i in range(100):  # 99 evictions within 50 s: one line
        await store.first_use("dpop_jti", f"a-{i}", 600)
        clock.advance(0.5)
    assert [r.getMessage() for r in caplog.records] == [
        "memory store full: 1 unexpired entries evicted (replay protection shortened for them);"
        " raise store.memory_max_entries, use Redis, or set store.memory_when_full = "
        '"refuse"']
    clock.advance(11)
    await store.first_use("dpop_jti", "b", 600)  # a minute after the first line: the rest
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().startswith("memory store full: 99 unexpired")


async def test_a_store_that_refuses_forgets_nothing(clock: FakeClock) -> None:
    store = MemoryStore(max_entries=2, prefix="t:", clock=clock, when_full="refuse")
    await store.first_use("dpop_jti", "a", 60)
    await store.set_binding("refresh", "rt", "jkt", 3600)
    with pytest.raises(StoreFullError):
        await store.first_use("dpop_jti", "b", 60)
    with pytest.raises(StoreFullError):
        await store.set_binding("refresh", "rt-2", "jkt", 3600)
    assert await store.first_use("dpop_jti", "a", 60) is False
    assert await store.get_binding("refresh", "rt") == "jkt"
    await store.set_binding("refresh", "rt", "jkt-2", 3600)  # an overwrite needs no room
    assert store.evictions == 0
    clock.advance(61)  # "a" expired: its room is free again
    assert await store.first_use("dpop_jti", "b", 60) is True


async def test_memory_stays_bounded(clock: FakeClock) -> None:
    """Unique values and repeated overwrites of one key both keep memory flat."""
    store = MemoryStore(max_entries=1000, prefix="t:", clock=clock)
    for i in range(2000):  # reach the steady state first
        await store.first_use("dpop_jti", f"warm-{i}", 60)
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for i in range(50_000):
            await store.first_use("dpop_jti", f"jti-{i}", 60)
            await store.set_binding("refresh", "one-token", f"jkt-{i}", 3600)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    # 1000 entries weigh a few hundred KB; 100 000 kept entries would be tens of MB.
    assert grown < 2_000_000, grown
    assert len(store) <= 1000


async def test_ping_and_close(store: MemoryStore) -> None:
    await store.ping()
    await store.first_use("dpop_jti", "jti", 60)
    await store.close()
    assert len(store) == 0


def test_max_entries_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStore(max_entries=0, prefix="t:", clock=clock)


async def test_open_store_memory(clock: FakeClock) -> None:
    settings = StoreSettings(url="memory://", key_prefix="p:", memory_max_entries=7)
    store = open_store(settings, clock)
    assert isinstance(store, MemoryStore)
    assert store.max_entries == 7
    assert store.prefix == "p:"
    assert await store.first_use("dpop_jti", "x", 1) is True
    clock.advance(1)
    assert await store.first_use("dpop_jti", "x", 1) is True


def test_open_store_unknown_scheme(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="unknown scheme"):
        open_store(StoreSettings(url="memcached://h"), clock)
