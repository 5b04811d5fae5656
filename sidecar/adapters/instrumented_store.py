"""The store port, timed and counted: an adapter around any `ReplayStore`.

The core calls the store through the port; what is measured of each call (its duration, a
failure, a replay refused, entries a full memory store evicted) goes to `StoreInstruments`,
which the shell's Prometheus metrics implement (`sidecar.http.metrics.Metrics`). The core
never calls back into the shell.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from sidecar.ports import ReplayStore, StoreError

T = TypeVar("T")


class StoreInstruments(Protocol):
    def store_operation(self, operation: str, seconds: float) -> None: ...

    def store_failed(self, operation: str) -> None: ...

    def replay_refused(self, kind: str) -> None: ...

    def store_evicted(self, count: int) -> None: ...


class InstrumentedStore:
    """The store port, timed and counted: round-trip durations, errors, replays refused."""

    def __init__(self, store: ReplayStore, instruments: StoreInstruments) -> None:
        self.inner = store
        self._instruments = instruments
        self._evictions_seen = self._evictions()

    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        try:
            first = await self._timed("first_use",
                                      self.inner.first_use(kind, value, ttl_seconds))
        finally:
            self._count_evictions()
        if not first:
            self._instruments.replay_refused(kind)
        return first

    async def get_binding(self, kind: str, value: str) -> str | None:
        return await self._timed("get_binding", self.inner.get_binding(kind, value))

    async def set_binding(self, kind: str, value: str, bound_to: str, ttl_seconds: float) -> None:
        try:
            await self._timed("set_binding",
                              self.inner.set_binding(kind, value, bound_to, ttl_seconds))
        finally:
            self._count_evictions()

    def _evictions(self) -> int:
        # Only the memory store counts evictions of its own (`MemoryStore.evictions`).
        return int(getattr(self.inner, "evictions", 0))

    def _count_evictions(self) -> None:
        evictions = self._evictions()
        if evictions > self._evictions_seen:
            self._instruments.store_evicted(evictions - self._evictions_seen)
            self._evictions_seen = evictions

    async def delete_binding(self, kind: str, value: str) -> None:
        await self._timed("delete_binding", self.inner.delete_binding(kind, value))

    async def ping(self) -> None:
        await self._timed("ping", self.inner.ping())

    async def warm_up(self) -> None:
        """Open the store's connections ahead of traffic, for a store that has any (Redis)."""
        warm_up = getattr(self.inner, "warm_up", None)
        if warm_up is not None:
            await warm_up()

    async def close(self) -> None:
        await self.inner.close()

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except StoreError:
            self._instruments.store_failed(operation)
            raise
        finally:
            self._instruments.store_operation(operation, time.perf_counter() - started)
