"""JWT access tokens (RFC 9068) as a `TokenFactsSource` of the resource side: the pure checks
of `sidecar.core.resource.jwt_access_token` with the authorization server's keys.

The keys come from the caching JWKS source the token side uses for client keys
(`sidecar.core.jose.key_sets.CachingJwksSource`: TTL, refetch on an unknown `kid` at most once
a minute, stale keys served for a while when the key server is down). Where they are:
`resource.jwks_uri`, or else the `jwks_uri` of the upstream's RFC 8414 metadata
(`<upstream.url>/.well-known/oauth-authorization-server`), read once and again every
`ttl_seconds`. Metadata without a `jwks_uri` means the upstream signs no access tokens:
JWTs are then left to the next source (introspection). Metadata naming another `issuer` than
the expected one is a configuration error, reported as the source being unavailable (RFC 8414
§3.3: the issuer in the document must be the one it was looked up for).

Failures: a JWT that fails is `InvalidTokenError` (`jwt.<reason>`, the check answers
`invalid_token`); keys or metadata that cannot be fetched are `SourceUnavailableError`
(503, fail closed); a token that is not a JWT is None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sidecar.core.jose.compact import CompactJws
from sidecar.core.jose.key_sets import JwkEntry, JwksError
from sidecar.core.resource.jwt_access_token import (
    AccessTokenRules,
    JwtRefusal,
    read_access_token,
    verify_access_token,
)
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.ports import (
    Clock,
    Fetcher,
    FetchError,
    InvalidTokenError,
    JwksSource,
    SourceUnavailableError,
)
from sidecar.settings import Settings

METADATA_PATH: Final = "/.well-known/oauth-authorization-server"  # RFC 8414 §3


@dataclass(frozen=True, slots=True)
class _Discovered:
    jwks_uri: str | None
    until: float


class MetadataJwksUri:
    """The `jwks_uri` of the upstream's metadata, fetched lazily and kept `ttl_seconds`
    (a failed fetch is retried after `retry_seconds`, not on every request)."""

    def __init__(self, fetcher: Fetcher, metadata_url: str, issuer: str, clock: Clock, *,
                 ttl_seconds: float = 300.0, retry_seconds: float = 10.0) -> None:
        self.metadata_url = metadata_url
        self._fetcher = fetcher
        self._issuer = issuer
        self._clock = clock
        self.ttl_seconds = ttl_seconds
        self.retry_seconds = retry_seconds
        self._known: _Discovered | None = None
        self._failure: tuple[str, float] | None = None  # (message, retry after)
        self._lock = asyncio.Lock()

    async def jwks_uri(self) -> str | None:
        now = self._clock.now()
        if self._known is not None and now < self._known.until:
            return self._known.jwks_uri
        async with self._lock:
            now = self._clock.now()
            if self._known is not None and now < self._known.until:
                return self._known.jwks_uri
            if self._failure is not None and now < self._failure[1]:
                raise SourceUnavailableError(self._failure[0])
            return await self._discover(now)

    async def _discover(self, now: float) -> str | None:
        try:
            document = await self._fetcher.get_json(self.metadata_url)
            jwks_uri = _jwks_uri(document, self._issuer)
        except (FetchError, ValueError) as exc:
            message = f"authorization server metadata {self.metadata_url}: {exc}"
            if self._known is not None:  # keep what was known, look again later
                self._known = _Discovered(self._known.jwks_uri, now + self.retry_seconds)
                return self._known.jwks_uri
            self._failure = (message, now + self.retry_seconds)
            raise SourceUnavailableError(message) from None
        self._failure = None
        self._known = _Discovered(jwks_uri, now + self.ttl_seconds)
        return jwks_uri


def _jwks_uri(document: object, issuer: str) -> str | None:
    if not isinstance(document, Mapping):
        raise ValueError("not a JSON object")
    if document.get("issuer") != issuer:
        raise ValueError(f"names issuer {str(document.get('issuer'))[:100]!r}, "
                         f"the resource side expects {issuer!r}")
    jwks_uri = document.get("jwks_uri")
    if jwks_uri is not None and not (isinstance(jwks_uri, str)
                                     and jwks_uri.startswith(("https://", "http://"))):
        raise ValueError("jwks_uri is not an http(s) URL")
    return jwks_uri


class JwtAccessTokenSource:
    """A `TokenFactsSource` for JWT access tokens. `jwks_uri`: a URL (`resource.jwks_uri`)
    or the upstream's metadata to find it in."""

    def __init__(self, jwks: JwksSource, jwks_uri: str | MetadataJwksUri,
                 rules: AccessTokenRules, clock: Clock) -> None:
        self._jwks = jwks
        self._jwks_uri = jwks_uri
        self.rules = rules
        self._clock = clock

    async def facts(self, access_token: str) -> TokenFacts | None:
        read = read_access_token(access_token, self.rules)
        if read is None:
            return None
        if isinstance(read, JwtRefusal):
            raise _invalid(read)
        keys = await self._keys(read)
        if keys is None:
            return None
        verified = verify_access_token(read, keys, self.rules, self._clock.now())
        if isinstance(verified, JwtRefusal):
            raise _invalid(verified)
        return verified

    async def _keys(self, jws: CompactJws) -> tuple[JwkEntry, ...] | None:
        uri = self._jwks_uri if isinstance(self._jwks_uri, str) \
            else await self._jwks_uri.jwks_uri()
        if uri is None:
            return None  # the upstream publishes no keys: not a token this source can read
        try:
            return await self._jwks.keys_for(self.rules.issuer, uri, jws.kid)
        except JwksError as exc:
            raise SourceUnavailableError(str(exc)) from None


def _invalid(refusal: JwtRefusal) -> InvalidTokenError:
    return InvalidTokenError(f"jwt.{refusal.reason}", refusal.message, refusal.detail)


def jwt_source(settings: Settings, fetcher: Fetcher, jwks: JwksSource,
               clock: Clock) -> JwtAccessTokenSource:
    """The JWT source of `[resource]`: the issuer is the sidecar's (`server.issuer`), the
    keys at `resource.jwks_uri` or else in the upstream's metadata."""
    resource = settings.resource
    rules = AccessTokenRules(issuer=settings.issuer,
                             accept_plain_jwt=resource.jwt_allow_plain_typ,
                             audiences=frozenset(resource.jwt_audiences))
    uri: str | MetadataJwksUri = resource.jwks_uri or MetadataJwksUri(
        fetcher, settings.upstream.url.rstrip("/") + METADATA_PATH, settings.issuer, clock)
    return JwtAccessTokenSource(jwks, uri, rules, clock)
