"""Slow and idle clients: deadlines for each connection, and a bound on how many are open.

aiohttp bounds an idle keep-alive connection but not the time a request head or the gaps in a
body may take, nor the number of connections: a client that opens connections and sends a
byte now and then (slowloris) holds a file descriptor with each until none is left for a
legitimate request. Each connection of the token listener is watched through four phases:

    head  a request head is awaited: it must be whole within `header_timeout_seconds`, from
          the connection's opening (a new connection) or from its first byte (keep-alive)
    body  the head is in, the body is not: at most `body_timeout_seconds` between its bytes,
          not counted while the sidecar itself holds reading back (that wait is not the
          client's: the upstream is slow to take a streamed body)
    busy  the request is in and being answered: the upstream's timeouts bound this
    idle  answered and kept alive, nothing sent since: at most `keepalive_timeout_seconds`

A passed deadline closes the connection (after a `408` when the client is waiting for the
answer to a request it began, RFC 9110 §15.5.9). Connections in `head` or `idle` are waiting
for their client; when `max_connections` are open, the one waiting longest is closed to
admit a new connection, and when none waits the new one is refused.

Nothing here knows aiohttp: `sidecar/http/server.py` tells a `ConnectionWatch` what its
connection does and is told back when, and why, to close it.
"""

from __future__ import annotations

import asyncio
import enum
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from sidecar.settings import ServerSettings

# The `reason` label of token_sidecar_connections_closed_total.
HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
KEEPALIVE_TIMEOUT = "keepalive_timeout"
MAX_CONNECTIONS = "max_connections"  # a waiting connection closed to admit a new one
MAX_CONNECTIONS_REFUSED = "max_connections_refused"  # a new one refused: none was waiting
CLOSE_REASONS = (HEADER_TIMEOUT, BODY_TIMEOUT, KEEPALIVE_TIMEOUT, MAX_CONNECTIONS,
                 MAX_CONNECTIONS_REFUSED)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int

    @classmethod
    def from_settings(cls, server: ServerSettings) -> ConnectionLimits:
        return cls(server.header_timeout_seconds, server.body_timeout_seconds,
                   server.keepalive_timeout_seconds, server.max_connections)

    @classmethod
    def for_admin(cls, server: ServerSettings) -> ConnectionLimits:
        """The admin listener's: the same timeouts, `server.admin_max_connections`."""
        return replace(cls.from_settings(server), max_connections=server.admin_max_connections)


class Phase(enum.Enum):
    HEAD = "head"
    BODY = "body"
    BUSY = "busy"
    IDLE = "idle"


# Called with the reason and whether the client waits for an answer to a request it began.
OnExpired = Callable[[str, bool], None]
BodyComplete = Callable[[], bool]


class ConnectionWatch:
    """The deadline of one connection, moved by what its protocol handler reports."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits,
                 on_expired: OnExpired, reading_held: Callable[[], bool]) -> None:
        self.limits = limits
        self.phase = Phase.HEAD
        self._loop = loop
        self._on_expired = on_expired
        # True while the sidecar does not read from the connection (a streamed body the
        # upstream is slow to take): the client cannot send then, so the gap is not its.
        self._reading_held = reading_held
        self._pending = 0  # requests whose head is in and whose answer is not finished
        self._body_complete: BodyComplete | None = None  # of the last request parsed
        self._head_bytes = False  # some of the awaited head has arrived
        self._next_head_at: float | None = None  # bytes of a next head came while busy
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.table: ConnectionTable | None = None

    def opened(self) -> None:
        self._arm(self.limits.header_timeout)

    def received(self, size: int, new_requests: int, body_complete: BodyComplete | None) -> None:
        """`size` bytes came in; `new_requests` heads were parsed from them, the last one's
        body complete when `body_complete()` says so."""
        if new_requests and self.phase is Phase.IDLE and body_complete is not None \
                and body_complete():
            self._whole_request(new_requests)
            return
        if size:
            self._bytes_came()
        if new_requests:
            self._pending += new_requests
            self._body_complete = body_complete
            self._head_bytes = False
            self._next_head_at = None
        self._settle()

    def _whole_request(self, new_requests: int) -> None:
        """Fast path for the usual keep-alive request: head and body in one read on an idle
        connection. It goes straight to busy, as `received` would through head (whose
        deadline it would arm, two clock reads and a table update, only to drop it)."""
        self._pending += new_requests
        self._body_complete = None
        self._head_bytes = False
        self._next_head_at = None
        self._enter(Phase.BUSY)

    def finished(self) -> None:
        """The answer to one request is written (or given up)."""
        self._pending = max(0, self._pending - 1)
        self._settle()

    def closed(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.table is not None:
            self.table.remove(self)

    def _bytes_came(self) -> None:
        if self.phase is Phase.IDLE:  # the first byte of the next request
            self._enter(Phase.HEAD)
        elif self.phase is Phase.HEAD:
            self._head_bytes = True  # the deadline stays: a trickle does not extend it
        elif self.phase is Phase.BODY:
            self._arm(self.limits.body_timeout)
        elif self._next_head_at is None:  # busy: a pipelined next request begins
            self._next_head_at = self._loop.time()

    def _settle(self) -> None:
        body_complete = self._body_complete
        if body_complete is not None and body_complete():
            self._body_complete = body_complete = None
        if body_complete is not None:
            self._enter(Phase.BODY)
        elif self._pending:
            self._enter(Phase.BUSY)
        elif self.phase in (Phase.BODY, Phase.BUSY):
            self._enter(Phase.IDLE if self._next_head_at is None else Phase.HEAD)

    def _enter(self, phase: Phase) -> None:
        if phase is self.phase:
            return
        self.phase = phase
        if phase is Phase.HEAD:
            now = self._loop.time()
            started = now if self._next_head_at is None else self._next_head_at
            self._head_bytes = True
            self._next_head_at = None
            self._arm(self.limits.header_timeout - (now - started))
        elif phase is Phase.BODY:
            self._arm(self.limits.body_timeout)
        elif phase is Phase.IDLE:
            self._arm(self.limits.keepalive_timeout)
        else:
            self._deadline = None
        if self.table is not None:
            self.table.phase_changed(self)

    def _arm(self, delay: float) -> None:
        # Moving a deadline later only records it: the timer, when it fires, sleeps on. Body
        # bytes move it on every read, and a timer re-made each time would cost more.
        deadline = self._loop.time() + delay
        self._deadline = deadline
        if self._timer is not None and self._timer.when() <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._fire)
        elif self.phase is Phase.BODY and self._reading_held():
            # Counted again from now: once reading resumes, the bytes the client had queued
            # arrive at once and move the deadline on.
            self._arm(self.limits.body_timeout)
        else:
            self._expire()

    def _expire(self) -> None:
        self._deadline = None
        if self.phase is Phase.HEAD:
            self._on_expired(HEADER_TIMEOUT, self._head_bytes)
        elif self.phase is Phase.BODY:
            self._on_expired(BODY_TIMEOUT, self._pending > 0)
        elif self.phase is Phase.IDLE:
            self._on_expired(KEEPALIVE_TIMEOUT, False)

    def evict(self) -> None:
        self._deadline = None
        self._on_expired(MAX_CONNECTIONS, False)


class ConnectionTable:
    """The open connections of one listener, and which of them wait for their client
    (oldest first): those are closed first when a new connection needs room."""

    def __init__(self, limits: Callable[[], ConnectionLimits]) -> None:
        self.limits = limits  # read at each connection: a reload applies to new ones
        self._open: set[ConnectionWatch] = set()
        self._waiting: OrderedDict[ConnectionWatch, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, watch: ConnectionWatch) -> bool:
        """Take `watch` in, closing the longest-waiting connection when full; False (the
        caller refuses the connection) when full and no connection waits."""
        if len(self._open) >= watch.limits.max_connections:
            if not self._waiting:
                return False
            oldest = next(iter(self._waiting))
            self.remove(oldest)  # now: its connection_lost comes on a later loop turn
            oldest.evict()
        watch.table = self
        self._open.add(watch)
        self._waiting[watch] = None
        return True

    def phase_changed(self, watch: ConnectionWatch) -> None:
        if watch not in self._open:
            return
        if watch.phase in (Phase.BODY, Phase.BUSY):
            self._waiting.pop(watch, None)
        elif watch not in self._waiting:
            self._waiting[watch] = None  # waits from now: the newest waiter

    def remove(self, watch: ConnectionWatch) -> None:
        watch.table = None
        self._open.discard(watch)
        self._waiting.pop(watch, None)
