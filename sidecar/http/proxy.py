"""The hop to the upstream: token requests (buffered, small) and everything else (streamed).

Token requests go over the sidecar's own client (sidecar/http/upstream_client.py), streamed
ones over one aiohttp `ClientSession`; each has its keep-alive pool. Nothing is retried after
the request body went out: the token client never sends a request twice, aiohttp never
retries a POST, and the session's retry of idempotent requests on a stale pooled connection
is switched off because a streamed body cannot be sent twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import StreamReader, hdrs, web
from multidict import CIMultiDict, istr
from yarl import URL

from sidecar import errors
from sidecar.core.bounded_cache import Memo
from sidecar.core.target import Target
from sidecar.errors import OAuthError
from sidecar.http import wire
from sidecar.http.headers import response_headers_for_client
from sidecar.http.upstream_client import AnswerTooLargeError, UpstreamAnswerError, UpstreamClient
from sidecar.settings import UpstreamSettings

_STREAM_CHUNK = 65536
_CACHED_URLS = 256
# The client library adds these when they are missing; a proxy must not invent them. An
# invented Accept-Encoding in particular would bring back a body the client cannot decode.
_NO_AUTO_HEADERS = ("Accept-Encoding", "User-Agent", "Content-Type")


class _ProxyRequest(aiohttp.ClientRequest):
    """aiohttp's client request, with a cheaper `update_auto_headers` for the session's
    `skip_auto_headers`.

    Fast path: aiohttp builds a sorted `CIMultiDict` of the skipped names, a copy of the
    request's headers and an extended copy of that on every request (6% of a token
    request's time in py-spy). The skipped names are the session's, the same frozenset on
    every request: their `CIMultiDict` is made once, and the headers are checked in place.
    Which headers are added is what aiohttp's own method adds (tests/http/
    test_forwarding.py checks that none is invented)."""

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        if not isinstance(skip_auto_headers, frozenset):
            super().update_auto_headers(skip_auto_headers)
            return
        skip = _skipped(skip_auto_headers)
        self._skip_auto_headers = skip
        headers = self.headers
        for name, value in self.DEFAULT_HEADERS.items():
            if name not in headers and name not in skip:
                headers[name] = value
        if hdrs.USER_AGENT not in headers and hdrs.USER_AGENT not in skip:
            headers[hdrs.USER_AGENT] = aiohttp.http.SERVER_SOFTWARE


_SKIPPED: dict[frozenset[str], CIMultiDict[None]] = {}


def _skipped(names: frozenset[str]) -> CIMultiDict[None]:
    """`names` as aiohttp's `update_auto_headers` keeps them, made once per set."""
    skip = _SKIPPED.get(names)
    if skip is None:
        skip = _SKIPPED[names] = CIMultiDict((istr(name), None) for name in sorted(names))
    return skip


@dataclass(frozen=True, slots=True)
class Outbound:
    """What a handler that reads the upstream's answer sends it: the request id, the headers
    as the pass-through would send them, and the checked target."""

    request_id: str
    headers: CIMultiDict[str]
    target: Target


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class UpstreamAnswer:
    status: Final[int]
    headers: Final[CIMultiDict[str]]
    body: Final[bytes]


def open_session(settings: UpstreamSettings) -> aiohttp.ClientSession:
    wire.install()  # header values go upstream as the client sent them (obs-text included)
    connector = aiohttp.TCPConnector(
        limit=settings.pool_size,
        keepalive_timeout=settings.keepalive_seconds,
    )
    session = aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # bodies pass through as the upstream encoded them
        skip_auto_headers=_NO_AUTO_HEADERS,
        request_class=_ProxyRequest,
        cookie_jar=aiohttp.DummyCookieJar(),  # a proxy keeps no cookies of its own
    )
    # See the module docstring: never send a request twice.
    session._retry_connection = False
    return session


def open_token_client(settings: UpstreamSettings) -> UpstreamClient:
    """The token hop's own client (sidecar/http/upstream_client.py), beside the session."""
    return UpstreamClient(URL(settings.url), pool_size=settings.pool_size,
                          keepalive_seconds=settings.keepalive_seconds,
                          connect_timeout_seconds=settings.connect_timeout_seconds)


class StreamingUpstream:
    """An upstream that requests are passed through to, streamed (the pass-through, the
    resource side's inline door)."""

    def __init__(self, session: aiohttp.ClientSession, settings: UpstreamSettings) -> None:
        self._session = session
        self._origin = URL(settings.url)
        self._base_path = self._origin.raw_path.rstrip("/")
        self._urls: Memo[tuple[str, str | None], URL] = Memo(self._build_url, _CACHED_URLS)
        # A streamed body may take long in total; what must not happen is a silent stall.
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout_seconds,
            sock_read=settings.timeout_seconds)

    def url_for(self, target: Target) -> URL:
        """`upstream.url`'s scheme, host and port, its path as a prefix, then the checked
        path and query: no request target can choose where the request goes.

        Fast path: the URLs of the last targets are kept (a token endpoint's target is the
        same on every request), which saves a `URL.build` per request."""
        return self._urls((target.path, target.query),
                          len(target.path) + len(target.query or ""))

    def _build_url(self, key: tuple[str, str | None]) -> URL:
        path, query = key
        return URL.build(scheme=self._origin.scheme, authority=self._origin.raw_authority,
                         path=self._base_path + path, query_string=query or "", encoded=True)

    async def stream(self, request: web.Request, target: Target,
                     headers: CIMultiDict[str]) -> web.StreamResponse:
        """Pass a non-token request through, body and answer streamed in both directions."""
        data = _framed_body(request, headers)
        try:
            async with self._session.request(
                request.method, self.url_for(target), headers=headers, data=data,
                timeout=self._stream_timeout, allow_redirects=False,
            ) as upstream:
                response = web.StreamResponse(
                    status=upstream.status, reason=upstream.reason,
                    headers=response_headers_for_client(upstream.headers))
                if upstream.content_length is not None:
                    response.content_length = upstream.content_length
                await response.prepare(request)
                return await _copy_body(upstream, response, request)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AnswerWith(upstream_error(exc)) from exc


class Upstream(StreamingUpstream):
    """The token endpoint's upstream: passed through, and asked for the answers the sidecar
    reads, over its own client."""

    def __init__(self, session: aiohttp.ClientSession, client: UpstreamClient,
                 settings: UpstreamSettings) -> None:
        super().__init__(session, settings)
        self._client = client
        self._max_token_response = settings.max_token_response_bytes
        self._token_timeout = settings.timeout_seconds

    async def send_token(
        self, request: web.BaseRequest, target: Target, headers: CIMultiDict[str],
        body: bytes | None
    ) -> UpstreamAnswer | OAuthError:
        """A request whose answer the sidecar reads (token, PAR, introspection, revocation,
        metadata): the body buffered and small, the answer read up to a bound. The answer is
        read here (to enforce no-store, token_type, bindings), so ask for it uncompressed."""
        headers["Accept-Encoding"] = "identity"
        try:
            answer = await self._client.exchange(
                request.method, self.url_for(target).raw_path_qs, headers, body,
                timeout=self._token_timeout, max_body=self._max_token_response)
        except AnswerTooLargeError:
            return _too_large(self._max_token_response)
        except (TimeoutError, OSError, UpstreamAnswerError, ValueError) as exc:
            return upstream_error(exc)
        return UpstreamAnswer(answer.status, response_headers_for_client(answer.headers),
                              answer.body)


def _framed_body(request: web.Request, headers: CIMultiDict[str]) -> StreamReader | None:
    """The client's body with the client's framing (RFC 9112 §6): a body that came with
    Content-Length goes on with that Content-Length, still streamed; only a chunked body goes
    chunked. Re-chunking is not harmless: gunicorn hands a chunked body to the WSGI app
    without CONTENT_LENGTH, and Django, which reads CONTENT_LENGTH bytes, then sees none."""
    if request.content_length is not None:
        # The parser accepted it, so there is no Transfer-Encoding beside it (RFC 9112 §6.3).
        headers["Content-Length"] = str(request.content_length)
    return request.content if request.body_exists else None


async def _copy_body(
    upstream: aiohttp.ClientResponse, response: web.StreamResponse, request: web.Request
) -> web.StreamResponse:
    try:
        async for chunk in upstream.content.iter_chunked(_STREAM_CHUNK):
            await response.write(chunk)
        await response.write_eof()
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        # The status line is gone already; the only honest signal left is to cut the
        # connection so the client sees a truncated answer, not a complete-looking one.
        if request.transport is not None:
            request.transport.close()
    return response


class AnswerWith(Exception):  # noqa: N818 - carries an answer, not a failure of ours
    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.result_code)
        self.error = error


def upstream_error(exc: BaseException) -> OAuthError:
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return errors.gateway_timeout("upstream.timeout",
                                      "The token endpoint did not answer in time.")
    return errors.bad_gateway("upstream.unavailable", "The token endpoint could not be reached.",
                              detail=type(exc).__name__)


def _too_large(limit: int) -> OAuthError:
    return errors.bad_gateway("upstream.response_too_large",
                              "The token endpoint's answer was too large.",
                              detail=f"over {limit} bytes")

