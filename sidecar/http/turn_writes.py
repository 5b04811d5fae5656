"""Socket writes made during one event-loop turn, written together when the turn ends.

Fast path. Under load a turn runs many requests' handlers one after the other (with 50
connections, about 17 a turn in the bench). Writing each one's request to the upstream at
once put a `write` system call between every two requests' decisions: the kernel's TCP
work on that socket, and waking the upstream's process on the other CPU, evict the caches
the next decision needs. The same ES256 verification measured 80 µs a call under load
against 63 µs repeated in a loop in the same process (`bench/intime`), and the DPoP rows ran
faster on Redis than on the in-process memory store, because there the Redis round trip
made every request of a turn decide first and write later. Queued here, the writes of a turn
go out together after it: `bench/ab.py --dpop`, DPoP on the memory store, 378 → 346 µs a
request (README "Performance", round 5).

A write waits for the rest of the turn's callbacks and one poll of the loop, never more: an
idle sidecar's turn runs one request, and writes it microseconds later. Nothing is written
twice or out of order (one list, first in first out). What is queued is the writer itself
(`QueuedWrite`: the token hop's `UpstreamConnection`), which decides when its turn comes
whether its request still goes out: not when its exchange has ended meanwhile (timed out,
failed, cancelled, or bytes arrived that it never asked for), and it knows until then that
its request is unsent, so that no bytes are taken for the answer to a request not written.

Only the requests to the upstream, not the answers to clients. The delay costs a request to
the upstream about the upstream's own turnaround (its answer could not be read before the
turn ends anyway); an answer held back waits for the whole rest of the turn before its
client has it. Tried on the answers too (29ad3cc, reverted): more req/s, but at half of the
pass-through's rate the p99 added to the pass-through's went from -1.02 ms (before) and
+0.15 ms (requests only) to +4.00 ms (medians of 3 alternating runs each,
`bench/run.py --only plain-paced,nodpop-paced`), past the 1 ms target.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class QueuedWrite(Protocol):
    def write_queued(self) -> None:
        """Write what was queued now, if it is still to be written; never raises."""
        ...


class TurnWrites:
    """The writes of the current turn of one event loop, made when it ends."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[QueuedWrite] = []

    def add(self, loop: asyncio.AbstractEventLoop, writer: QueuedWrite) -> None:
        """`writer.write_queued()` once this turn's callbacks have run."""
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(writer)

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for writer in pending:
            writer.write_queued()
