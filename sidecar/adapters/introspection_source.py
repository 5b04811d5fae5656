"""The upstream's introspection endpoint (RFC 7662) as a `TokenFactsSource` of the resource side.

- The resource server authenticates with its own client credentials, `client_secret_basic`
  (RFC 7662 §2.1, RFC 6749 §2.3.1), read from `resource.introspection_credentials_file` with
  the rest of the configuration (`sidecar.core.resource.credentials`). The secret is never
  logged, never in a repr or an error message.
- The request: `POST token=...&token_type_hint=access_token`, `Accept: application/json`, no
  redirects followed, one overall timeout, the answer read up to a size limit; the answer is
  read strictly by `sidecar.core.resource.introspection_answer`.
- Answers are cached by sha256(token) (the token itself is never a key in memory): active
  ones until the token's `exp`, at most `cache_seconds`; inactive ones `inactive_seconds`; at
  most `max_entries` (least recently used go first). Concurrent lookups of one token share
  one request. A timeout, a connection failure, a status other than 200 or an answer not
  understood raise `SourceUnavailableError` (the check answers 503: fail closed), and is not
  cached.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

import aiohttp

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.resource.credentials import ClientCredentials
from sidecar.core.resource.introspection_answer import (
    Inactive,
    NotUnderstood,
    cache_seconds,
    read_answer,
)
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.ports import Clock, InvalidTokenError, SourceUnavailableError
from sidecar.settings import Settings

DEFAULT_TIMEOUT_SECONDS: Final = 5.0
DEFAULT_INACTIVE_SECONDS: Final = 10.0
DEFAULT_MAX_ENTRIES: Final = 10000
MAX_ANSWER_BYTES: Final = 64 * 1024

Answer = TokenFacts | Inactive


@dataclass(frozen=True, slots=True)
class _Cached:
    answer: Answer
    until: float


class IntrospectionSource:
    """A `TokenFactsSource`. Use one per application; pass the application's `ClientSession`
    or let it own one (closed by `close`)."""

    def __init__(self, url: str, credentials: ClientCredentials, clock: Clock, *,
                 session: aiohttp.ClientSession | None = None,
                 cache_seconds: float = 300.0,
                 inactive_seconds: float = DEFAULT_INACTIVE_SECONDS,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
                 leeway_seconds: float = 60.0) -> None:
        self.url = url
        self._credentials = credentials
        self._clock = clock
        self._session = session
        self._owns_session = session is None
        self.cache_seconds = cache_seconds
        self.inactive_seconds = inactive_seconds
        self.timeout_seconds = timeout_seconds
        self.leeway_seconds = leeway_seconds
        self._cache: BoundedCache[bytes, _Cached] = BoundedCache(max_entries)
        self._in_flight: dict[bytes, asyncio.Task[Answer]] = {}
        self.lookups = 0  # requests sent to the upstream, for metrics and tests

    async def facts(self, access_token: str) -> TokenFacts | None:
        key = hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache.get(key)
        if cached is not None and self._clock.now() < cached.until:
            return _facts(cached.answer)
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(key, access_token))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        # Shielded: a client that goes away cancels its own wait, not the lookup the other
        # requests for the same token are waiting for.
        return _facts(await asyncio.shield(task))

    def _finished(self, key: bytes, task: asyncio.Task[Answer]) -> None:
        self._in_flight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every waiter may have gone away

    async def _lookup(self, key: bytes, access_token: str) -> Answer:
        self.lookups += 1
        try:
            async with asyncio.timeout(self.timeout_seconds):
                status, content_type, body = await self._post(access_token)
        except TimeoutError:
            raise SourceUnavailableError(
                f"introspection {self.url}: no answer within {self.timeout_seconds:g} s") \
                from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise SourceUnavailableError(
                f"introspection {self.url}: {type(exc).__name__}: {exc}") from None
        now = self._clock.now()
        answer = read_answer(status, content_type, body, now, self.leeway_seconds)
        if isinstance(answer, NotUnderstood):
            raise SourceUnavailableError(f"introspection {self.url}: {answer.reason}")
        ttl = cache_seconds(answer, now, max_seconds=self.cache_seconds,
                            inactive_seconds=self.inactive_seconds)
        if ttl > 0:
            self._cache.put(key, _Cached(answer, now + ttl))
        return answer

    async def _post(self, access_token: str) -> tuple[int, str, bytes]:
        # Every header named: the application's session adds none of its own (it is a
        # proxy's: no Content-Type, no Accept-Encoding, bodies not decompressed).
        headers = {"Authorization": self._credentials.authorization,
                   "Accept": "application/json", "Accept-Encoding": "identity",
                   "Content-Type": "application/x-www-form-urlencoded"}
        form = urlencode({"token": access_token, "token_type_hint": "access_token"})
        async with self._client().post(self.url, data=form.encode("ascii"), headers=headers,
                                       allow_redirects=False) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(16384):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise ValueError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
            return response.status, response.content_type, b"".join(chunks)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    def forget(self) -> None:
        """Drop every cached answer (a revocation seen, a test)."""
        self._cache.clear()

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None


def _facts(answer: Answer) -> TokenFacts | None:
    """An active token's facts; an inactive one is refused outright (RFC 7662 §2.2: not to be
    used), whatever `resource.bearer` lets unknown tokens do: a revoked token must not pass
    as an unbound Bearer one. An answer not understood is no verdict: the next source."""
    if isinstance(answer, TokenFacts):
        return answer
    if isinstance(answer, Inactive):
        raise InvalidTokenError("introspection.inactive", "The access token is not active.")
    return None


def introspection_source(settings: Settings, credentials: ClientCredentials | None,
                         session: aiohttp.ClientSession,
                         clock: Clock) -> IntrospectionSource | None:
    """The introspection source of `[resource]`, over the application's session, with the
    credentials the resource policy read; None without `resource.introspection_url`."""
    resource = settings.resource
    if not resource.introspection_url or credentials is None:
        return None
    return IntrospectionSource(resource.introspection_url, credentials, clock, session=session,
                               cache_seconds=resource.introspection_cache_seconds)
