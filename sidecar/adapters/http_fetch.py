"""The `Fetcher` port over aiohttp: GET a JSON document (a `jwks_uri`), bounded in every way.

- http or https only; a redirect is followed only to the same host, never from https to http,
  at most `max_redirects` times (a key set that moves to another host is a configuration
  change, not something a response may decide);
- one overall timeout per document, redirects included;
- the body is read up to `max_bytes` and no further, whatever Content-Length says;
- status 200 only; the body must be JSON.
Every failure is a `FetchError` whose message names the URL and the problem.

The URLs come from the operator's configuration (the client registry, trusted issuers), never
from a request, so this is not an open fetcher.
"""

from __future__ import annotations

import asyncio
import json
from typing import Final

import aiohttp
from yarl import URL

from sidecar.ports import FetchError

DEFAULT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_MAX_BYTES: Final = 256 * 1024
DEFAULT_MAX_REDIRECTS: Final = 3
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_ACCEPT: Final = "application/jwk-set+json, application/json;q=0.9"


class AiohttpFetcher:
    """Use one per application; pass the application's `ClientSession` or let it own one."""

    def __init__(self, session: aiohttp.ClientSession | None = None, *,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 max_redirects: int = DEFAULT_MAX_REDIRECTS) -> None:
        self._session = session
        self._owns_session = session is None
        self.timeout_seconds = timeout_seconds
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cookies: a key server must not be able to make requests stateful.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def get_json(self, url: str) -> object:
        try:
            async with asyncio.timeout(self.timeout_seconds):
                body = await self._get(URL(url, encoded=False))
        except TimeoutError:
            raise FetchError(f"{url}: no answer within {self.timeout_seconds:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise FetchError(f"{url}: the response is not JSON") from None

    async def _get(self, url: URL) -> bytes:
        origin = url
        _check_scheme(url, origin)
        for _ in range(self.max_redirects + 1):
            async with self._client().get(url, allow_redirects=False,
                                          headers={"Accept": _ACCEPT}) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    if not location:
                        raise FetchError(f"{url}: redirect without Location")
                    url = url.join(URL(location))
                    _check_scheme(url, origin)
                    continue
                if response.status != 200:
                    raise FetchError(f"{url}: HTTP status {response.status}")
                return await self._read(response, url)
        raise FetchError(f"{origin}: more than {self.max_redirects} redirects")

    async def _read(self, response: aiohttp.ClientResponse, url: URL) -> bytes:
        if response.content_length is not None and response.content_length > self.max_bytes:
            raise FetchError(f"{url}: the response is larger than {self.max_bytes} bytes")
        body = await response.content.read(self.max_bytes + 1)
        # read(n) may return less than is there; keep reading up to the limit.
        chunks = [body]
        size = len(body)
        while body and size <= self.max_bytes:
            body = await response.content.read(self.max_bytes + 1 - size)
            chunks.append(body)
            size += len(body)
        if size > self.max_bytes:
            raise FetchError(f"{url}: the response is larger than {self.max_bytes} bytes")
        return b"".join(chunks)


def _check_scheme(url: URL, origin: URL) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise FetchError(f"{url}: only absolute http and https URLs are fetched")
    if url is origin:
        return
    if (url.host or "").lower() != (origin.host or "").lower():
        raise FetchError(f"{origin}: redirected to another host ({url.host})")
    if origin.scheme == "https" and url.scheme != "https":
        raise FetchError(f"{origin}: redirected from https to http")
