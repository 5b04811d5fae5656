"""Admission: how many token-path requests one process handles at once.

At most `server.max_in_flight` requests are handled at once. Beyond that a request waits, in
arrival order, in a queue of at most `server.max_queued`, each for at most
`server.queue_timeout_seconds`. Only a request that finds the queue full, or waits longer
than that, is shed: `503 temporarily_unavailable` with `Retry-After`, counted in
`token_sidecar_requests_shed_total{reason}` (`queue_full`, `queue_timeout`). A shed request
never reached the store or the upstream; that is the difference with `store.unavailable`,
which says that Redis failed.

Why: without a bound, a burst makes every request wait for everything at once (the store,
the upstream's connection pool, the CPU), and the last of them time out; with it, the ones
admitted go at full speed and the queue absorbs the rest of the burst.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable

from sidecar import errors
from sidecar.errors import OAuthError
from sidecar.http.metrics import Metrics
from sidecar.settings import ServerSettings

QUEUE_FULL = "queue_full"
QUEUE_TIMEOUT = "queue_timeout"
SHED_REASONS = (QUEUE_FULL, QUEUE_TIMEOUT)


class Admission:
    """`enter()` before handling a request (None: go on; an OAuthError: answer it), `leave()`
    after, for every request that entered."""

    def __init__(self, max_in_flight: int, max_queued: int, queue_timeout: float, *,
                 on_shed: Callable[[str], None] = lambda reason: None,
                 on_queued: Callable[[int], None] = lambda change: None) -> None:
        self._free = max_in_flight
        self._max_queued = max_queued
        self._queue_timeout = queue_timeout
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._on_shed = on_shed
        self._on_queued = on_queued
        # RFC 9110 §10.2.3: a whole number of seconds; by then a queued request would have
        # been served or shed.
        self._retry_after = str(max(1, math.ceil(queue_timeout)))

    @classmethod
    def from_settings(cls, server: ServerSettings, metrics: Metrics) -> Admission:
        return cls(server.max_in_flight, server.max_queued, server.queue_timeout_seconds,
                   on_shed=metrics.count_shed, on_queued=metrics.queued.inc)

    async def enter(self) -> OAuthError | None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return None
        if len(self._waiting) >= self._max_queued:
            return self._shed(QUEUE_FULL)
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        self._on_queued(1)
        try:
            async with asyncio.timeout(self._queue_timeout):
                await asyncio.shield(turn)
        except TimeoutError:
            if turn.done():  # the turn came as the wait ended: take it
                return None
            self._dequeue(turn)
            return self._shed(QUEUE_TIMEOUT)
        except asyncio.CancelledError:
            if turn.done():
                self.leave()  # handed a turn it will not use: pass it on
            else:
                self._dequeue(turn)
            raise
        return None

    def leave(self) -> None:
        """Hand the turn to the first request waiting, or give it back."""
        if self._waiting:
            turn = self._waiting.popleft()
            self._on_queued(-1)
            turn.set_result(None)
            return
        self._free += 1

    def _dequeue(self, turn: asyncio.Future[None]) -> None:
        self._waiting.remove(turn)
        self._on_queued(-1)

    def _shed(self, reason: str) -> OAuthError:
        self._on_shed(reason)
        return errors.temporarily_unavailable(
            "server.overloaded", "The token endpoint is at capacity; try again shortly.",
            detail=reason,
        ).with_headers(("Retry-After", self._retry_after))
