"""One connection of the token hop's client (sidecar/http/upstream_client.py): the request
written, the answer read by llhttp (httptools) up to a bound, and whether the connection may
serve the next request. Framing as RFC 9112 §6 says; 1xx answers skipped (RFC 9110 §15.2)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, cast

import httptools
from multidict import CIMultiDict, istr

from sidecar.http.turn_writes import TurnWrites
from sidecar.running_loop import running_loop

# What an answer's status line and headers may take (aiohttp's client allows 8190 bytes a
# line): a larger head is not a token endpoint's answer.
_MAX_HEAD_BYTES = 65536
_ENCODING = "utf-8"
_RAW = "surrogateescape"  # the bytes as received, both ways (sidecar/http/wire.py)


class UpstreamAnswerError(Exception):
    """The upstream's answer could not be read; the class name is the log line's detail."""


class ServerDisconnectedError(UpstreamAnswerError):
    """The connection closed before the answer was complete."""


class MalformedAnswerError(UpstreamAnswerError):
    """Not an HTTP/1.1 answer llhttp reads (or a head over `_MAX_HEAD_BYTES`)."""


class AnswerTooLargeError(UpstreamAnswerError):
    """Over `upstream.max_token_response_bytes`."""


def _head_too_large() -> MalformedAnswerError:
    return MalformedAnswerError(f"a head over {_MAX_HEAD_BYTES} bytes")


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class RawAnswer:
    status: Final[int]
    headers: Final[CIMultiDict[str]]
    body: Final[bytes]


class UpstreamConnection(asyncio.Protocol):
    """One connection to the upstream and the parser of the answer it is waiting for."""

    def __init__(self, max_body: int) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.idle_since = 0.0  # loop.time() when it last became idle
        self._max_body = max_body
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[RawAnswer] | None = None
        self._unsent: bytes | None = None  # the request, until its turn's writes are made
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []  # as read: decoded once the head is
        self._header_map: CIMultiDict[str] = CIMultiDict()  # made once the head is read
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0  # the header lines read (on_header)
        self._unparsed_head = 0  # the bytes of reads that ended inside the head
        self._head_done = False
        self._informational = False
        self._close_delimited = False
        self._keep_alive = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A socket transport (uvloop's is not an asyncio.Transport subclass, but is one).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None or self._answer.done():
            # Bytes nobody asked for: what comes next on this connection cannot be trusted.
            self.close()
            return
        if self._unsent is not None:
            # Bytes before the request went out (it waits for its turn's end) answer nothing
            # the sidecar asked: a stale answer on a pooled connection, never the token's.
            self._fail(MalformedAnswerError("bytes before the request was written"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # an upgrade included: never asked for
            self._fail(MalformedAnswerError(type(exc).__name__))
            return
        # A head still incomplete after this read: its bytes so far, all of them (llhttp
        # keeps a partial header line). A head completed in it is measured by `on_header`, so
        # that a read holding the head and a large body is not taken for a large head.
        if not self._head_done:
            self._unparsed_head += len(data)
            if self._unparsed_head > _MAX_HEAD_BYTES:
                self._fail(_head_too_large())

    def eof_received(self) -> bool:
        # Lost from now on, not only once connection_lost comes (a loop turn later): a pooled
        # connection whose upstream just closed it must not be picked in between.
        self.lost = True
        return False  # close the transport; connection_lost ends a pending answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._head_done and self._close_delimited:
            # RFC 9112 §6.3 (8): without Content-Length or chunked, the body ends at close.
            self._complete()
        else:
            answer.set_exception(ServerDisconnectedError())

    # -- llhttp's callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._answer is None or self._answer.done():
            self.close()  # a second answer to one request: the connection is not reused

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._head_size > _MAX_HEAD_BYTES:
            self._fail(_head_too_large())
            return
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True
        status = self._parser.get_status_code()
        if status == 101:
            self._fail(MalformedAnswerError("101: a protocol switch nobody asked for"))
            return
        self._informational = 100 <= status < 200  # RFC 9110 §15.2: another answer follows
        # Fast path: the head's lines decoded in one comprehension, not one call each.
        self._header_map = headers = CIMultiDict([
            (istr(name.decode(_ENCODING, _RAW)), value.decode(_ENCODING, _RAW))
            for name, value in self._headers])
        codings = headers.get("Transfer-Encoding")
        if codings is not None and codings.rpartition(",")[2].strip().lower() != "chunked":
            # RFC 9112 §6.3 (7): then the body would end at close, coded as the client cannot
            # be told (the answer is re-framed for it): not a token endpoint's answer.
            self._fail(MalformedAnswerError("a transfer coding that does not end in chunked"))
            return
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._fail(AnswerTooLargeError(f"over {self._max_body} bytes"))
        self._close_delimited = length is None and "Transfer-Encoding" not in headers \
            and status not in (204, 304) and not self._informational

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._fail(AnswerTooLargeError(f"over {self._max_body} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._informational:
            self._reset()  # a 100 Continue or 103 Early Hints: the answer is still to come
            return
        self._complete()

    # --------------------------------------------------------------------------------------

    def _complete(self) -> None:
        answer = self._answer
        if answer is None or answer.done():
            return
        # Read here: once the message is complete, llhttp's answer is for the next one.
        self._keep_alive = self._parser.should_keep_alive()
        answer.set_result(RawAnswer(self._parser.get_status_code(), self._header_map,
                                    b"".join(self._body)))

    def _fail(self, error: Exception) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(error)
        self.close()

    def _time_out(self) -> None:
        self._fail(TimeoutError())

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    @property
    def reusable(self) -> bool:
        """After an answer: whether the next request may use this connection."""
        return not self.lost and self._keep_alive and not self._close_delimited

    async def exchange(self, request: bytes, max_body: int, deadline: float,
                       writes: TurnWrites) -> RawAnswer:
        """Write the request (with the other writes of this turn, `writes`), await the answer
        until `deadline` (loop time): TimeoutError."""
        assert self.transport is not None
        self._max_body = max_body
        self._reset()
        loop = running_loop()  # no getpid() system call (sidecar/running_loop.py)
        answer: asyncio.Future[RawAnswer] = loop.create_future()
        self._answer = answer
        timer = loop.call_at(deadline, self._time_out)
        self._unsent = request
        writes.add(loop, self)  # written when this turn ends (sidecar/http/turn_writes.py)
        try:
            return await answer
        finally:
            timer.cancel()
            self._unsent = None  # ended before its turn's writes: never written

    def write_queued(self) -> None:
        """`TurnWrites`: the request goes out, unless its exchange has ended meanwhile."""
        request, self._unsent = self._unsent, None
        transport = self.transport
        if request is None or transport is None or transport.is_closing() \
                or self._answer is None or self._answer.done():
            return
        try:
            transport.write(request)
        except Exception:
            # A transport that cannot take the write (shut for writing): the exchange must
            # fail now, not wait for its deadline; the turn's other writes are still made.
            self._fail(ServerDisconnectedError("the request could not be written"))
