"""The writes of one event-loop turn, written when it ends (sidecar/http/turn_writes.py), on
real socket transports, on asyncio and on uvloop (the sidecar's default `server.event_loop`):
the far end of each transport is a plain socket read without blocking."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
import uvloop

from sidecar.http.turn_writes import TurnWrites

LOOPS = pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop],
                                ids=["asyncio", "uvloop"])


@dataclass
class Recorder(asyncio.Protocol):
    lost: list[Exception | None] = field(default_factory=list)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


@dataclass
class Pair:
    transport: asyncio.WriteTransport
    protocol: Recorder
    far: socket.socket

    def received(self) -> bytes:
        """What has reached the far end so far (b"" when nothing has)."""
        chunks = []
        while True:
            try:
                chunk = self.far.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


Scenario = Callable[[asyncio.AbstractEventLoop, list[Pair]], Awaitable[None]]


def run(new_loop: Callable[[], asyncio.AbstractEventLoop], scenario: Scenario) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pairs = []
        for _ in range(3):
            near, far = socket.socketpair()
            far.setblocking(False)
            transport, protocol = await loop.create_connection(Recorder, sock=near)
            pairs.append(Pair(transport, protocol, far))
        try:
            await scenario(loop, pairs)
        finally:
            for pair in pairs:
                pair.transport.close()
                pair.far.close()
            await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


async def next_turns() -> None:
    for _ in range(3):  # the flush runs in the next turn; a socket write needs no more
        await asyncio.sleep(0)


@LOOPS
def test_the_writes_of_a_turn_go_out_when_it_ends_in_order(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pairs: list[Pair]) -> None:
        writes = TurnWrites()
        writes.write(loop, pairs[0].transport, b"first ")
        writes.write(loop, pairs[1].transport, b"other")
        writes.write(loop, pairs[0].transport, b"second")
        assert len(writes) == 3
        assert [pair.received() for pair in pairs] == [b"", b"", b""]  # not during the turn
        await next_turns()
        assert len(writes) == 0
        assert [pair.received() for pair in pairs] == [b"first second", b"other", b""]
        # A later turn's writes: a new flush, the earlier ones not written again.
        writes.write(loop, pairs[2].transport, b"later")
        await next_turns()
        assert [pair.received() for pair in pairs] == [b"", b"", b"later"]

    run(new_loop, scenario)


@LOOPS
def test_a_transport_closed_before_the_turn_ends_gets_nothing(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pairs: list[Pair]) -> None:
        writes = TurnWrites()
        writes.write(loop, pairs[0].transport, b"never")
        writes.write(loop, pairs[1].transport, b"still written")
        pairs[0].transport.close()  # its exchange timed out, say
        await next_turns()
        pairs[0].far.setblocking(True)
        assert pairs[0].far.recv(100) == b""  # the end of the stream, none of the bytes
        assert pairs[1].received() == b"still written"

    run(new_loop, scenario)


@LOOPS
def test_a_transport_that_refuses_the_write_is_aborted_and_the_rest_written(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    async def scenario(loop: asyncio.AbstractEventLoop, pairs: list[Pair]) -> None:
        writes = TurnWrites()
        pairs[0].transport.write_eof()  # shut for writing: a write now raises
        writes.write(loop, pairs[0].transport, b"refused")
        writes.write(loop, pairs[1].transport, b"written")
        await next_turns()
        assert pairs[0].transport.is_closing()
        assert len(pairs[0].protocol.lost) == 1  # its protocol is told: the exchange fails
        assert pairs[1].received() == b"written"
        assert pairs[1].protocol.lost == []

    run(new_loop, scenario)
