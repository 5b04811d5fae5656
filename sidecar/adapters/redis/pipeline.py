"""How a burst of store commands reaches Redis: coalesced pipelines and timeouts that measure
Redis, not the event loop.

* `Coalescer`: the commands issued within one event-loop iteration go to Redis as one
  non-transactional redis-py pipeline, so a burst of 500 requests costs a few round trips
  over a few warm connections instead of one connection each. Every command keeps its own
  answer: a `SET NX PX` is as atomic in a pipeline as alone, and an error reply (`WRONGTYPE`,
  `OOM`, `READONLY`) fails only the command it answers. At most `max_batches` pipelines are in
  flight; commands issued meanwhile wait for the next one (the wait is bounded by the
  pipelines in flight, each bounded by the command timeout).
* (sidecar/adapters/redis/batches.py) On a Cluster a batch is split by the master that
  owns each key's slot, one pipeline per
  master, so that a master that fails or hangs fails only the commands of its slots.
* `LoopFairReads`: redis-py bounds each read with an asyncio timer started when the command
  is sent. On a loop busy with other requests the timer fires late, together with the
  reply that arrived long before it, and redis-py's timer wins: a Redis that answered in 1 ms
  is timed out. Here a timer that expires first looks at the socket: when reply bytes are
  waiting (in the stream's buffer or on the socket), Redis has answered and the loop was
  late, so the wait goes on; when nothing came, the read times out as before. A Redis that
  hangs still times out after the command timeout (plus whatever the loop was late).
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.running_loop import running_loop

# One command as Redis reads it: ("SET", key, value, "NX", "PX", 1000).
Command = tuple[str | bytes | int, ...]


# ---------------------------------------------------------------------------------------
# Timeouts that measure Redis


class redis_deadline:  # noqa: N801 - used as a function: `async with redis_deadline(...)`
    """Cancel the body after `seconds` unless `answered()` says the reply is already there,
    in which case wait another `seconds` (the loop is behind, not Redis). Raises
    TimeoutError when it cancels.

    Fast path: a class, not an `asynccontextmanager` generator (which costs a generator, a
    wrapper object and two more awaits): this runs for every read of a reply."""

    __slots__ = ("_answered", "_expired", "_handle", "_loop", "_seconds", "_task")

    def __init__(self, seconds: float, answered: Callable[[], bool]) -> None:
        self._seconds = seconds
        self._answered = answered
        self._expired = False

    async def __aenter__(self) -> None:
        # Neither asks asyncio for the running loop: no getpid() system call a batch
        # (sidecar/running_loop.py).
        self._loop = running_loop()
        task = asyncio.current_task(self._loop)
        assert task is not None
        self._task = task
        self._handle = self._loop.call_later(self._seconds, self._check)

    def _check(self) -> None:
        if self._answered():
            self._handle = self._loop.call_later(self._seconds, self._check)
        else:
            self._expired = True
            self._task.cancel()

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        self._handle.cancel()
        if isinstance(exc, asyncio.CancelledError) and self._expired \
                and self._task.uncancel() == 0:
            raise TimeoutError from None


class LoopFairReads(Connection):  # mixed into each connection class redis-py uses below
    """A redis-py connection whose read timeout is `redis_deadline` (module docstring)."""

    async def read_response(self, disable_decoding: bool = False,
                            timeout: float | None = None, *,
                            # float | None: as typed by redis-py's Sentinel connection.
                            disconnect_on_error: float | None = True,
                            push_request: bool | None = False) -> Any:
        if timeout is not None or not self.socket_timeout:
            return await super().read_response(
                disable_decoding, timeout, disconnect_on_error=bool(disconnect_on_error),
                push_request=push_request)
        try:
            async with redis_deadline(self.socket_timeout, self._reply_waiting):
                # math.inf: redis-py's own timer off, the deadline above instead.
                return await super().read_response(
                    disable_decoding, float("inf"),
                    disconnect_on_error=bool(disconnect_on_error),
                    push_request=push_request)
        except TimeoutError:
            if disconnect_on_error:
                await self.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None

    async def read_replies(self, count: int) -> list[Any]:
        """`count` replies in order, under one deadline for them all rather than one each (a
        timer and a task lookup a reply: 9 µs a DPoP request on Redis in py-spy); it is
        extended, like each reply's, while replies are arriving. An error reply is its
        `ResponseError` in the list: the connection stays in step."""
        if not self.socket_timeout:
            return [await self._reply(None) for _ in range(count)]
        try:
            async with redis_deadline(self.socket_timeout, self._reply_waiting):
                return [await self._reply(float("inf")) for _ in range(count)]
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError(f"Timeout reading from {self._host_error()}") from None

    async def _reply(self, timeout: float | None) -> Any:
        try:
            return await super().read_response(timeout=timeout)
        except ResponseError as error:
            return error

    def _reply_waiting(self) -> bool:
        """Bytes from the server are read but not parsed yet, or wait on the socket."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            return False
        if reader.at_eof() or getattr(reader, "_buffer", None):
            return True
        sock = writer.transport.get_extra_info("socket")
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)


class FairConnection(LoopFairReads, Connection):
    pass


class FairSSLConnection(LoopFairReads, SSLConnection):
    pass


class FairSentinelConnection(LoopFairReads, SentinelManagedConnection):
    pass


class FairSentinelSSLConnection(LoopFairReads, SentinelManagedSSLConnection):
    pass


# ---------------------------------------------------------------------------------------
# Coalescing


@dataclass(slots=True)
class Queued:
    """One caller's command: its key (for Cluster routing), the command, its answer."""

    key: str
    command: Command
    answer: asyncio.Future[Any]

    @classmethod
    def of(cls, key: str, command: Command) -> Queued:
        """A command waiting for its answer, its future made on the running loop (found
        without a getpid() system call: sidecar/running_loop.py)."""
        return cls(key, command, running_loop().create_future())

    def settle(self, result: Any) -> None:
        if self.answer.done():  # the caller went away (cancelled)
            return
        if isinstance(result, BaseException):
            self.answer.set_exception(result)
        else:
            self.answer.set_result(result)


Run = Callable[[list[Queued]], Awaitable[None]]


class Coalescer:
    """Commands submitted within one loop iteration run as one batch (`run(batch)`, which
    settles every command); at most `max_batches` batches at once."""

    def __init__(self, run: Run, max_batches: int) -> None:
        self._run = run
        self._max_batches = max_batches
        self._pending: list[Queued] = []
        self._scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        return bool(self._running or self._pending)

    async def submit(self, key: str, command: Command) -> Any:
        """The answer to the command, or the exception Redis (or the batch) raised for it."""
        call = Queued.of(key, command)
        self._pending.append(call)
        self._schedule()
        return await call.answer

    def _schedule(self) -> None:
        if not self._scheduled and self._pending and len(self._running) < self._max_batches:
            self._scheduled = True
            # call_soon: the flush runs after the callbacks already queued in this
            # iteration, so the commands they issue join the same batch.
            running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending or len(self._running) >= self._max_batches:
            return
        batch, self._pending = self._pending, []
        task = running_loop().create_task(self._execute(batch))
        self._running.add(task)
        task.add_done_callback(self._finished)

    async def _execute(self, batch: list[Queued]) -> None:
        try:
            await self._run(batch)
        except BaseException as exc:
            for call in batch:
                call.settle(exc if isinstance(exc, Exception) else RedisConnectionError(
                    "the store was closed"))
            if not isinstance(exc, Exception):
                raise

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._schedule()

    async def aclose(self) -> None:
        for task in list(self._running):
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        for call in self._pending:
            call.settle(RedisConnectionError("the store was closed"))
        self._pending = []
