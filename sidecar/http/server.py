"""Running the application: an AppRunner whose connections are guarded, whose protocol-level
errors are OAuth JSON too, and which reads request bodies and header bytes as they arrived.

Requests that aiohttp's HTTP parser refuses (a header line that does not parse, a duplicated
Content-Type, an unknown method token, ...) never reach a handler: aiohttp answers them
itself with a text/plain page. A token endpoint promises an OAuth JSON error for *any*
malformed input, so the request handler below renders those answers the same way as ours.

On the token listener the handler also reports what its connection does to a
`ConnectionWatch` (sidecar/http/connections.py: header, body and keep-alive timeouts,
`server.max_connections`). aiohttp offers no hook for "a request head was parsed" or "an
answer is finished", so `GuardedRequestHandler` reads four things of aiohttp's
`RequestHandler` that are not public API, present unchanged from 3.10 to 3.14:
`_messages` (the parsed requests not yet handled), `_current_request`, `_reading_paused`,
and the `finish_response` coroutine; tests/http/test_slow_clients.py pins them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from sidecar import errors
from sidecar.errors import OAuthError
from sidecar.http import wire
from sidecar.http.connections import (
    MAX_CONNECTIONS_REFUSED,
    ConnectionLimits,
    ConnectionTable,
    ConnectionWatch,
)
from sidecar.http.metrics import Metrics
from sidecar.http.render import NO_STORE_HEADERS, error_response
from sidecar.http.runtime import ADMIN_APP, STATE, TOKEN_APP

log = logging.getLogger("token_sidecar.http")


# aiohttp's own idle timer, behind ours (server.keepalive_timeout_seconds is at most 3600).
_AIOHTTP_KEEPALIVE_BACKSTOP = 3630.0


class OAuthErrorRequestHandler(RequestHandler):
    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if self.transport is None and isinstance(exc, ConnectionError):
            # The connection was closed under the handler (a timeout, or the client left):
            # nobody to answer, nothing failed.
            log.debug("connection closed before the answer: %s", type(exc).__name__)
            gone = web.Response(status=status)
            gone.force_close()
            return gone
        if request.writer.output_size > 0:
            # Part of an answer is on the wire already: let aiohttp cut the connection.
            return super().handle_error(request, status, exc, message)
        if 400 <= status < 500:
            error = errors.invalid_request("http.malformed", "The HTTP request is malformed.")
            log.info("refused a malformed HTTP request from %s: %s", request.remote,
                     type(exc).__name__ if exc else status)
        else:
            error = errors.server_error("http.internal_error", "The sidecar failed.")
            # The exception type only: a traceback or message can quote request data.
            log.error("internal error: %s", type(exc).__name__ if exc else status)
        response = error_response(error.with_detail(str(status)))
        response.force_close()
        return response


class GuardedRequestHandler(OAuthErrorRequestHandler):
    """Tells its `ConnectionWatch` what the connection does; closes it when told to. Counts
    its connections in `metrics`, unless None (the admin listener's)."""

    def __init__(self, manager: web.Server, table: ConnectionTable, metrics: Metrics | None,
                 **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._table = table
        self._metrics = metrics
        self._watch: ConnectionWatch | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        watch = ConnectionWatch(self._loop, self._table.limits(), self._expired,
                                self._reading_held)
        if not self._table.admit(watch):
            self._close_for(MAX_CONNECTIONS_REFUSED, errors.temporarily_unavailable(
                "connections.max_connections", "The sidecar has too many connections open."
            ).with_headers(("Retry-After", "1")))
            return
        self._watch = watch
        if self._metrics is not None:
            self._metrics.open_connections.inc()
        watch.opened()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._watch is not None:
            self._watch.closed()
            self._watch = None
            if self._metrics is not None:
                self._metrics.open_connections.dec()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if self._watch is None:
            return
        parsed = len(self._messages) - queued  # nothing takes from the queue meanwhile
        body_complete = self._messages[-1][1].is_eof if parsed > 0 else None
        self._watch.received(len(data), parsed, body_complete)

    async def finish_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().finish_response(*args, **kwargs)
        finally:
            if self._watch is not None:
                self._watch.finished()

    def _reading_held(self) -> bool:
        # Flow control (a body buffer full) since 3.10; a full queue of pipelined requests
        # since 3.14.
        return bool(self._reading_paused or getattr(self, "_buffer_paused", False))

    def _expired(self, reason: str, client_waiting: bool) -> None:
        answer = None
        if client_waiting and self._nothing_answered():
            answer = errors.request_timeout(
                f"connections.{reason}", "The request did not arrive in time.")
        self._close_for(reason, answer)

    def _nothing_answered(self) -> bool:
        request = getattr(self, "_current_request", None)
        return request is None or request.writer.output_size == 0

    def _close_for(self, reason: str, answer: OAuthError | None = None) -> None:
        if self._metrics is not None:
            self._metrics.child(self._metrics.connections_closed, reason).inc()
        transport = self.transport
        if transport is not None:
            log.debug("closing a connection from %s: %s",
                      transport.get_extra_info("peername"), reason)
            if answer is not None:
                transport.write(raw_error_response(answer))
        self.force_close()


def raw_error_response(error: OAuthError) -> bytes:
    """An OAuth JSON error as bytes for a connection about to close: for answers written
    where aiohttp's response machinery has no request to answer."""
    body = json.dumps(error.body, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), *NO_STORE_HEADERS, *error.headers,
               ("Content-Length", str(len(body))), ("Connection", "close")]
    head = f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("ascii") + b"\r\n" + body


class _OAuthErrorServer(web.Server):
    connection_table: ConnectionTable | None = None
    metrics: Metrics | None = None

    def __call__(self) -> RequestHandler:
        if self.connection_table is None:
            return OAuthErrorRequestHandler(self, loop=self._loop, **self._kwargs)
        return GuardedRequestHandler(self, self.connection_table, self.metrics,
                                     loop=self._loop, **self._kwargs)


class SidecarRunner(web.AppRunner):
    """`web.AppRunner` with the handler above; everything else is aiohttp's own."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
        kwargs.setdefault("keepalive_timeout", _AIOHTTP_KEEPALIVE_BACKSTOP)
        # Request bodies are read as they arrived: a token request's coding is refused
        # (parse.check_content_encoding), any other body passes through byte for byte with
        # its Content-Encoding, instead of being inflated and forwarded still labelled gzip.
        kwargs.setdefault("auto_decompress", False)
        wire.install()
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp has no public hook for the protocol handler's class; test_server.py pins
        # this behaviour so an aiohttp upgrade that changes it fails loudly.
        server.__class__ = _OAuthErrorServer
        assert isinstance(server, _OAuthErrorServer)
        # The token application's listener, and those that serve its state on their own
        # port (the resource check listener, the decision API): each its own table, the same
        # limits (server.*_timeout_seconds, server.max_connections). The admin listener: its
        # own table too, bounded by server.admin_max_connections, not counted in the token
        # port's metrics (a scrape would count its own connection).
        token_app = self.app if STATE in self.app else self.app.get(TOKEN_APP)
        if token_app is not None and STATE in token_app:
            state = token_app[STATE]
            admin = self.app.get(ADMIN_APP, False)
            limits = ConnectionLimits.for_admin if admin else ConnectionLimits.from_settings
            server.connection_table = ConnectionTable(lambda: limits(state.settings.server))
            server.metrics = None if admin else state.metrics
        return server
