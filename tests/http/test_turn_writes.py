"""The token hop's requests of one event-loop turn, written when it ends
(sidecar/http/turn_writes.py, `UpstreamConnection.write_queued`), on asyncio and on uvloop
(the sidecar's default `server.event_loop`): real `UpstreamConnection`s over socket pairs,
whose far end is a plain socket read without blocking."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import uvloop

from sidecar.http.turn_writes import TurnWrites
from sidecar.http.upstream_connection import (
    MalformedAnswerError,
    RawAnswer,
    ServerDisconnectedError,
    UpstreamConnection,
)

LOOPS = pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop],
                                ids=["asyncio", "uvloop"])
REQUEST = b"POST /token HTTP/1.1\r\nHost: as\r\nContent-Length: 0\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


@dataclass
class Upstream:
    connection: UpstreamConnection
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

    def exchange(self, writes: TurnWrites, request: bytes = REQUEST,
                 seconds: float = 5.0) -> asyncio.Task[RawAnswer]:
        loop = asyncio.get_running_loop()
        return loop.create_task(
            self.connection.exchange(request, 1024, loop.time() + seconds, writes))


Scenario = Callable[[list[Upstream]], Awaitable[None]]


def run(new_loop: Callable[[], asyncio.AbstractEventLoop], scenario: Scenario) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        upstreams = []
        for _ in range(2):
            near, far = socket.socketpair()
            far.setblocking(False)
            _, connection = await loop.create_connection(lambda: UpstreamConnection(1024),
                                                         sock=near)
            upstreams.append(Upstream(connection, far))
        try:
            await scenario(upstreams)
        finally:
            for upstream in upstreams:
                upstream.connection.close()
                upstream.far.close()
            await asyncio.sleep(0)

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(main())


def on_both_loops(scenario: Scenario) -> Callable[[Callable[[], asyncio.AbstractEventLoop]], None]:
    """A test of `scenario`, run once on asyncio and once on uvloop."""
    @LOOPS
    def test(new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
        run(new_loop, scenario)

    test.__name__, test.__doc__ = scenario.__name__, scenario.__doc__  # what pytest collects
    return test


async def turns(count: int = 3) -> None:
    for _ in range(count):  # the writes are made in the next turn; a socket needs no more
        await asyncio.sleep(0)


@on_both_loops
async def test_a_turns_requests_go_out_when_it_ends_and_get_their_answers(
        upstreams: list[Upstream]) -> None:
    writes = TurnWrites()
    first, second = upstreams
    exchanges = [first.exchange(writes), second.exchange(writes, REQUEST + b"second")]
    await asyncio.sleep(0)  # both exchanges have queued their request: this turn ends
    assert [first.received(), second.received()] == [b"", b""]
    await turns()
    assert first.received() == REQUEST
    assert second.received() == REQUEST + b"second"
    first.far.send(ANSWER)
    second.far.send(ANSWER)
    answers = await asyncio.gather(*exchanges)
    assert [(a.status, a.body) for a in answers] == [(200, b"{}"), (200, b"{}")]


@on_both_loops
async def test_nothing_is_written_before_the_turn_ends(upstreams: list[Upstream]) -> None:
    writes = TurnWrites()
    loop = asyncio.get_running_loop()
    coroutine = upstreams[0].connection.exchange(REQUEST, 1024, loop.time() + 5, writes)
    exchange = loop.create_task(coroutine)
    await asyncio.sleep(0)  # the exchange ran up to its await: its request is queued
    assert upstreams[0].received() == b""
    await turns()
    assert upstreams[0].received() == REQUEST
    exchange.cancel()


@on_both_loops
async def test_the_queued_writes_are_made_in_the_order_they_came(upstreams: list[Upstream]) -> None:
    made: list[str] = []

    @dataclass
    class Named:
        name: str

        def write_queued(self) -> None:
            made.append(self.name)

    loop = asyncio.get_running_loop()
    writes = TurnWrites()
    for name in ("a", "b", "c"):
        writes.add(loop, Named(name))
    assert made == []
    await turns()
    writes.add(loop, Named("d"))  # a later turn: a new flush, the first three not again
    await turns()
    assert made == ["a", "b", "c", "d"]


@on_both_loops
async def test_a_connection_closed_before_the_turn_ends_is_never_written(
        upstreams: list[Upstream]) -> None:
    writes = TurnWrites()
    closed = upstreams[0].exchange(writes)
    written = upstreams[1].exchange(writes)
    await asyncio.sleep(0)  # both queued, neither written
    upstreams[0].connection.close()  # what UpstreamClient does with a cancelled exchange
    with pytest.raises(ServerDisconnectedError):
        await closed
    await turns()
    upstreams[0].far.setblocking(True)
    assert upstreams[0].far.recv(100) == b""  # the end of the stream, no request
    assert upstreams[1].received() == REQUEST
    written.cancel()


@on_both_loops
async def test_a_request_the_transport_refuses_fails_its_exchange_at_once(
        upstreams: list[Upstream]) -> None:
    writes = TurnWrites()
    transport = upstreams[0].connection.transport
    assert transport is not None
    transport.write_eof()  # shut for writing: a write now raises
    refused = upstreams[0].exchange(writes, seconds=30)
    written = upstreams[1].exchange(writes)
    with pytest.raises(ServerDisconnectedError):
        await asyncio.wait_for(refused, 2)  # now, not at its 30 s deadline
    await turns()
    assert upstreams[1].received() == REQUEST  # the turn's other write is made
    written.cancel()


@on_both_loops
async def test_bytes_before_the_request_went_out_are_no_answer_to_it(
        upstreams: list[Upstream]) -> None:
    writes = TurnWrites()
    connection = upstreams[0].connection
    exchange = upstreams[0].exchange(writes)
    await asyncio.sleep(0)  # queued, not written yet
    # A stale answer on a pooled connection, read in the loop's poll before the turn's
    # writes are made (uvloop polls between them): delivered as the loop would.
    connection.data_received(ANSWER)
    with pytest.raises(MalformedAnswerError, match="before the request was written"):
        await exchange
    await turns()
    upstreams[0].far.setblocking(True)
    assert upstreams[0].far.recv(100) == b""  # closed, and the request never sent
