"""The token hop's own HTTP/1.1 client: the buffered requests whose answer the sidecar reads
(token, PAR, introspection, revocation, metadata), each one head and a small body out, a
bounded answer in. Streamed pass-through keeps aiohttp's client (sidecar/http/proxy.py).

Fast path: aiohttp's `ClientSession.request` was 18% of a token request's time (py-spy,
README "Performance": a `ClientRequest`, its connection key, a timer context, a
`ClientResponse` and a `StreamReader` for every request); this client writes the request with
one `write` (at the end of the event-loop turn, with the turn's other requests:
sidecar/http/turn_writes.py) and reads the answer with llhttp (httptools), the parser
aiohttp's own C parser is made from. What it keeps of the hop it replaces
(tests/http/test_upstream_client.py):

- nothing is sent twice: a request is never retried once written, and a pooled connection
  the upstream closed while it sat idle is never picked;
- keep-alive connections, at most `upstream.pool_size` in use at a time (the others wait,
  in order), idle ones closed after `upstream.keepalive_seconds`;
- `upstream.connect_timeout_seconds` for a new connection, `upstream.timeout_seconds` for the
  whole exchange (waiting for a connection included): `TimeoutError`, a 504;
- an answer over `upstream.max_token_response_bytes`, a malformed one, or a connection closed
  before the answer ends: `UpstreamAnswerError`, a 502; the connection is closed, never reused;
- header values go out as the client sent them (sidecar/http/wire.py: surrogates stand for
  the bytes 0x80-0xff) and a CR, LF or other control in a name or value is refused;
- `Host` (the upstream's, unless the handler set one), `Content-Length` from the body and
  `Accept: */*` when the client sent none, as aiohttp's client adds them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from multidict import CIMultiDict
from yarl import URL

from sidecar.http import wire
from sidecar.http.turn_writes import TurnWrites
from sidecar.http.upstream_connection import (
    AnswerTooLargeError,
    MalformedAnswerError,
    RawAnswer,
    ServerDisconnectedError,
    UpstreamAnswerError,
    UpstreamConnection,
)
from sidecar.running_loop import running_loop

__all__ = ["AnswerTooLargeError", "MalformedAnswerError", "RawAnswer", "ServerDisconnectedError",
           "UpstreamAnswerError", "UpstreamClient"]

class UpstreamClient:
    """The keep-alive connections to one upstream origin, for buffered exchanges."""

    def __init__(self, origin: URL, *, pool_size: int, keepalive_seconds: float,
                 connect_timeout_seconds: float, ssl_context: ssl.SSLContext | None = None,
                 ) -> None:
        if origin.host is None:
            raise ValueError(f"no host in {origin}")
        self._host = origin.host
        self._port = origin.port or (443 if origin.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if origin.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        # What aiohttp's client sends as Host: the port only when it is not the default.
        self._host_header = origin.raw_authority
        self._pool_size = pool_size
        self._keepalive = keepalive_seconds
        self._connect_timeout = connect_timeout_seconds
        self._idle: list[UpstreamConnection] = []  # the most recently used last: the first reused
        self._in_use = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._sweep_timer: asyncio.TimerHandle | None = None
        # The requests of one event-loop turn, written together (sidecar/http/turn_writes.py).
        self._writes = TurnWrites()

    async def exchange(self, method: str, target: str, headers: CIMultiDict[str],
                       body: bytes | None, *, timeout: float, max_body: int) -> RawAnswer:
        """One request and its answer within `timeout` seconds (waiting for a connection
        included). Raises TimeoutError, OSError (no connection) or `UpstreamAnswerError`;
        never sends the request twice.

        Fast path: the deadline is one timer on the future awaited (`loop.call_at`), not an
        `asyncio.timeout` block (7 µs a request in py-spy, for its cancellation bookkeeping)."""
        request = self._serialize(method, target, headers, body)  # ValueError: a control char
        loop = running_loop()  # no getpid() system call (sidecar/running_loop.py)
        deadline = loop.time() + timeout
        await self._take_slot(loop, deadline)
        connection: UpstreamConnection | None = None
        try:
            connection = self._idle_connection(loop.time()) \
                or await self._connect(max_body, deadline - loop.time())
            answer = await connection.exchange(request, max_body, deadline, self._writes)
        except BaseException:
            if connection is not None:
                connection.close()  # half an exchange: the connection is in no known state
            raise
        finally:
            self._give_slot()
        self._release(connection, loop)
        return answer

    def _serialize(self, method: str, target: str, headers: CIMultiDict[str],
                   body: bytes | None) -> bytes:
        headers = headers.copy()
        if "Host" not in headers:
            headers["Host"] = self._host_header
        headers.popall("Transfer-Encoding", None)  # the body is whole: Content-Length frames it
        if body is not None or method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body or b""))
        if "Accept" not in headers:
            headers["Accept"] = "*/*"
        head = wire.serialize_headers(f"{method} {target} HTTP/1.1", headers)
        return head + body if body else head

    async def _take_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._in_use < self._pool_size and not self._waiting:
            self._in_use += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter  # _give_slot hands its slot over: _in_use stays as it is
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._give_slot()  # handed a slot just as it was cancelled: pass it on
            elif waiter in self._waiting:
                self._waiting.remove(waiter)
            raise
        finally:
            timer.cancel()

    def _give_slot(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_use -= 1

    def _idle_connection(self, now: float) -> UpstreamConnection | None:
        while self._idle:
            connection = self._idle.pop()
            # The upstream may have closed it while it was idle, or it idled too long.
            if not connection.lost and now - connection.idle_since < self._keepalive \
                    and connection.transport is not None \
                    and not connection.transport.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self, max_body: int, remaining: float) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(min(self._connect_timeout, remaining)):
            _, connection = await loop.create_connection(
                lambda: UpstreamConnection(max_body), self._host, self._port, ssl=self._ssl,
                server_hostname=self._host if self._ssl is not None else None)
        return connection

    def _release(self, connection: UpstreamConnection, loop: asyncio.AbstractEventLoop) -> None:
        """Fast path: an idle connection is stamped, and one sweep closes those idle for
        `upstream.keepalive_seconds`, rather than a timer made and cancelled per request."""
        if self._closed or not connection.reusable:
            connection.close()
            return
        connection.idle_since = loop.time()
        self._idle.append(connection)
        if self._sweep_timer is None:
            self._sweep_timer = loop.call_at(connection.idle_since + self._keepalive,
                                             self._sweep)

    def _sweep(self) -> None:
        self._sweep_timer = None
        loop = running_loop()
        now = loop.time()
        fresh: list[UpstreamConnection] = []
        for connection in self._idle:
            if not connection.lost and now - connection.idle_since < self._keepalive:
                fresh.append(connection)
            else:
                connection.close()
        self._idle = fresh
        if fresh:  # the oldest first: the order they were released in
            self._sweep_timer = loop.call_at(fresh[0].idle_since + self._keepalive, self._sweep)

    async def close(self) -> None:
        self._closed = True
        if self._sweep_timer is not None:
            self._sweep_timer.cancel()
            self._sweep_timer = None
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())
