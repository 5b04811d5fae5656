"""Socket writes made during one event-loop turn, written together when the turn ends: the
token hop's requests to the upstream (`TurnWrites`, sidecar/http/upstream_client.py) and
the answers to clients (`TurnTransport`, the token listener's connections,
sidecar/http/server.py).

Fast path. Under load a turn runs many requests' handlers one after the other (with 50
connections, about 17 a turn in the bench). Writing each one's request to the upstream, and
each answer to its client, at once put a `write` system call between every two requests'
work: the kernel's TCP work on that socket, and waking the peer's process on the other CPU,
evict the caches the next request needs. The same ES256 verification measured 80 µs a call
under load against 63 µs repeated in a loop in the same process (`bench/intime`), and the
DPoP rows ran faster on Redis than on the in-process memory store, because there the Redis
round trip made every request of a turn decide first and write later. Queued here, the
writes of a turn go out together after it: `bench/ab.py --dpop`, DPoP on the memory store,
378 → 346 µs a request for the upstream's (README "Performance", round 5).

A write waits for the rest of the turn's callbacks and one poll of the loop, never more: an
idle sidecar's turn runs one request, and writes it microseconds later. Nothing is written
twice or out of order (one list, first in first out), and nothing is written to a transport
closed meanwhile (the exchange that queued it has failed or timed out, and closed it): its
protocol has already been told, or is told now (`abort`, for a transport that refuses the
write).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class TurnWrites:
    """The writes of the current turn of one event loop, written when it ends."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending: list[tuple[asyncio.WriteTransport, bytes]] = []

    def write(self, loop: asyncio.AbstractEventLoop, transport: asyncio.WriteTransport,
              data: bytes) -> None:
        """`transport.write(data)` once this turn's callbacks have run."""
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append((transport, data))

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        for transport, data in pending:
            if transport.is_closing():
                continue  # its exchange has ended (timed out, failed, cancelled) and closed it
            try:
                transport.write(data)
            except Exception:
                # A transport that cannot take the write (shut for writing): its exchange
                # must fail now, not wait for its deadline; the others are still written.
                transport.abort()

    def __len__(self) -> int:
        return len(self._pending)


# A larger write goes out at once (the writes queued before it first): batching is for the
# many small writes of a turn, and a streamed body's chunks are not copied to be queued.
_QUEUED_AT_MOST = 65536


class TurnTransport:
    """A transport whose writes wait for the end of the turn (`TurnWrites`); everything else
    is the transport's own. What aiohttp's server calls on its protocol's transport: `write`,
    `writelines`, `is_closing`, `get_extra_info`, `close`, `pause_reading`, `resume_reading`;
    anything else is passed through as it is. Closing, aborting or half-closing writes what
    is queued first, so no byte is lost or reordered."""

    __slots__ = ("_loop", "_transport", "_writes")

    def __init__(self, transport: asyncio.Transport, writes: TurnWrites,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._writes = writes
        self._loop = loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) > _QUEUED_AT_MOST:
            self._writes.flush()
            self._transport.write(data)
            return
        self._writes.write(self._loop, self._transport, bytes(data))

    def writelines(self, chunks: Iterable[bytes | bytearray | memoryview]) -> None:
        chunks = list(chunks)
        if sum(len(chunk) for chunk in chunks) > _QUEUED_AT_MOST:
            self._writes.flush()
            self._transport.writelines(chunks)
            return
        self._writes.write(self._loop, self._transport, b"".join(chunks))

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def close(self) -> None:
        self._writes.flush()
        self._transport.close()

    def abort(self) -> None:
        self._writes.flush()
        self._transport.abort()

    def write_eof(self) -> None:
        self._writes.flush()
        self._transport.write_eof()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
