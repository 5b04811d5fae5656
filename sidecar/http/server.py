"""Running the application: an AppRunner whose protocol-level errors are OAuth JSON too, and
which reads request bodies and header bytes as they arrived.

Requests that aiohttp's HTTP parser refuses (a header line that does not parse, a duplicated
Content-Type, an unknown method token, ...) never reach a handler: aiohttp answers them
itself with a text/plain page. A token endpoint promises an OAuth JSON error for *any*
malformed input, so the request handler below renders those answers the same way as ours.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from sidecar import errors
from sidecar.http import wire
from sidecar.http.render import error_response

log = logging.getLogger("token_sidecar.http")


class OAuthErrorRequestHandler(RequestHandler):
    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
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


class _OAuthErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        return OAuthErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class SidecarRunner(web.AppRunner):
    """`web.AppRunner` with the handler above; everything else is aiohttp's own."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("access_log", None)
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
        return server
