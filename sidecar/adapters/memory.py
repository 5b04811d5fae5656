"""`memory://`: the store for one process (development, tests, a single replica).

Entries live in a dict keyed by `store_key(prefix, kind, value)` (values are hashed, as in
Redis, so refresh tokens never sit in memory longer than the request that carried them),
next to a min-heap of `(expires_at, seq, key)` that orders them by expiry.

Why a heap and not an OrderedDict by insertion: the kinds have very different TTLs (a DPoP
`jti` lives about a minute, a refresh-token binding 30 days), so insertion order is not expiry
order once kinds are mixed in one store, and a front-of-queue purge would stall behind the first
long-lived binding. The heap gives exact expiry order for both purging and eviction at
O(log n) per write, with n <= `max_entries` (log2(100 000) ~ 17 comparisons, in C): constant
for all practical purposes. Heap slots left stale by an overwrite or a lazy expiry are skipped
when popped, and the heap is rebuilt (O(n), amortised O(1)) when stale slots outnumber live
entries, so memory stays bounded by `max_entries` however many unique values arrive.

Every method is synchronous inside (no `await` between the check and the set), so each call
is atomic within the event loop. The store is not thread-safe; use it from one event loop.
"""

from __future__ import annotations

import heapq
import logging
import math

from sidecar.ports import Clock, StoreFullError, store_key

log = logging.getLogger("token_sidecar.store")

# (expires_at, bound_to or None for a replay entry, seq). `seq` ties the entry to its heap slot.
_Entry = tuple[float, str | None, int]

_MIN_TTL_SECONDS = 0.001  # the same floor as Redis `PX 1`
_EVICTION_LOG_INTERVAL_SECONDS = 60.0  # one warning a minute at most while evictions go on
WHEN_FULL = ("evict", "refuse")


class MemoryStore:
    """A bounded, TTL-expiring ReplayStore for one process.

    When the store is full, a new entry first makes room by dropping expired entries. If none
    has expired, `when_full` decides:

    - `"evict"` (default): the entry closest to expiry (the oldest on a tie) is dropped. That
      forgets that a `jti` was used, so a replay of that proof would be accepted for the rest
      of its TTL (and evicting a refresh-token binding forgets the binding). Evicting the
      entry closest to expiry keeps the reopened replay window as short as possible and
      prefers short-lived `jti`s over long-lived bindings. Each eviction is counted in
      `evictions` (the metric `token_sidecar_store_evictions_total`) and logged, at most once
      a minute while it goes on: replay protection is weakened, `memory_max_entries` is too
      small for the traffic or the store is being flooded.
    - `"refuse"`: the write raises `StoreFullError` (the request is answered 503): a flood of
      unique values becomes an outage instead, but no replay is ever accepted.

    Use Redis for anything real.
    """

    def __init__(self, max_entries: int, prefix: str, clock: Clock,
                 when_full: str = "evict") -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries!r}")
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {WHEN_FULL}, got {when_full!r}")
        self.max_entries = max_entries
        self.prefix = prefix
        self.clock = clock
        self.when_full = when_full
        self.evictions = 0  # unexpired entries dropped to make room (see the class docstring)
        self._unlogged_evictions = 0
        self._eviction_logged_at = -math.inf
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0

    def __len__(self) -> int:
        """Entries held, including expired ones not dropped yet."""
        return len(self._entries)

    # -- ReplayStore ---------------------------------------------------------------------

    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        key = store_key(self.prefix, kind, value)
        now = self.clock.now()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return False
        self._put(key, now + _ttl(ttl_seconds), None, now)
        return True

    async def get_binding(self, kind: str, value: str) -> str | None:
        key = store_key(self.prefix, kind, value)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self.clock.now():
            del self._entries[key]  # its heap slot becomes stale and is skipped later
            return None
        return entry[1]

    async def set_binding(self, kind: str, value: str, bound_to: str, ttl_seconds: float) -> None:
        key = store_key(self.prefix, kind, value)
        now = self.clock.now()
        self._put(key, now + _ttl(ttl_seconds), bound_to, now)

    async def delete_binding(self, kind: str, value: str) -> None:
        # Its heap slot becomes stale and is skipped later.
        self._entries.pop(store_key(self.prefix, kind, value), None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()
        self._heap.clear()

    # -- internals -----------------------------------------------------------------------

    def _put(self, key: str, expires_at: float, bound_to: str | None, now: float) -> None:
        self._drop_expired(now)
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._make_room(now)
        self._seq += 1
        self._entries[key] = (expires_at, bound_to, self._seq)
        heapq.heappush(self._heap, (expires_at, self._seq, key))
        if len(self._heap) > 2 * len(self._entries) + 64:
            self._compact()

    def _drop_expired(self, now: float) -> None:
        """Pop expired heap slots; each slot is popped once, so this is amortised O(log n)."""
        heap, entries = self._heap, self._entries
        while heap and heap[0][0] <= now:
            _, seq, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry[2] == seq:
                del entries[key]

    def _make_room(self, now: float) -> None:
        if self.when_full == "refuse":
            raise StoreFullError(f"memory store full ({self.max_entries} unexpired entries)")
        while len(self._entries) >= self.max_entries and self._evict_one():
            pass
        self._log_evictions(now)

    def _log_evictions(self, now: float) -> None:
        if now - self._eviction_logged_at < _EVICTION_LOG_INTERVAL_SECONDS:
            return
        log.warning("memory store full: %d unexpired entries evicted (replay protection "
                    "shortened for them); raise store.memory_max_entries, use Redis, or set "
                    "store.memory_when_full = \"refuse\"", self._unlogged_evictions)
        self._eviction_logged_at = now
        self._unlogged_evictions = 0

    def _evict_one(self) -> bool:
        """Drop the live entry closest to expiry (nothing has expired: see `_drop_expired`)."""
        heap, entries = self._heap, self._entries
        while heap:
            _, seq, key = heapq.heappop(heap)
            entry = entries.get(key)
            if entry is not None and entry[2] == seq:
                del entries[key]
                self.evictions += 1
                self._unlogged_evictions += 1
                return True
        return False  # unreachable while every live entry has a heap slot

    def _compact(self) -> None:
        self._heap = [(exp, seq, key) for key, (exp, _, seq) in self._entries.items()]
        heapq.heapify(self._heap)


def _ttl(ttl_seconds: float) -> float:
    if not math.isfinite(ttl_seconds):
        raise ValueError(f"ttl_seconds must be finite, got {ttl_seconds!r}")
    return max(ttl_seconds, _MIN_TTL_SECONDS)
