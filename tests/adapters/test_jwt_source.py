"""JWT access tokens as a token source (sidecar.adapters.jwt_source): the issuer's keys
fetched over real HTTP by the sidecar's own fetcher and JWKS cache, from `resource.jwks_uri`
or from the upstream's RFC 8414 metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.adapters.http_fetch import AiohttpFetcher
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.adapters.jwt_source import (
    METADATA_PATH,
    JwtAccessTokenSource,
    MetadataJwksUri,
    jwt_source,
)
from sidecar.core.resource.jwt_access_token import AccessTokenRules
from sidecar.ports import InvalidTokenError, SourceUnavailableError
from tests.conftest import make_settings
from tests.support.fakes import FakeClock
from tests.support.jwt_as import ISSUER, JwtAccessTokenServer
from tests.support.opaque_as import METADATA, OpaqueTokenServer
from tests.support.servers import start_app

JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RULES = AccessTokenRules(issuer=ISSUER)


@pytest.fixture
async def issuer() -> AsyncIterator[JwtAccessTokenServer]:
    server = JwtAccessTokenServer()
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[AiohttpFetcher]:
    fetcher = AiohttpFetcher(timeout_seconds=2)
    yield fetcher
    await fetcher.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def source(issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock, *,
           discover: bool = False) -> JwtAccessTokenSource:
    jwks = CachingJwksSource(fetcher, clock)
    uri: str | MetadataJwksUri = f"{issuer.url}/jwks"
    if discover:
        uri = MetadataJwksUri(fetcher, issuer.url + METADATA_PATH, ISSUER, clock)
    return JwtAccessTokenSource(jwks, uri, RULES, clock)


@pytest.mark.parametrize("discover", [False, True], ids=["jwks_uri", "metadata"])
async def test_a_bound_jwt_gives_its_cnf(issuer: JwtAccessTokenServer,
                                         fetcher: AiohttpFetcher, clock: FakeClock,
                                         discover: bool) -> None:
    tokens = source(issuer, fetcher, clock, discover=discover)
    facts = await tokens.facts(issuer.token(cnf={"jkt": JKT}))
    assert facts is not None and facts.source == "jwt" and facts.jkt == JKT
    assert facts.client_id == "app" and facts.subject == "alice"
    await tokens.facts(issuer.token())
    assert issuer.jwks_hits == 1  # the key set is cached


async def test_an_opaque_token_is_left_to_the_next_source(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    assert await source(issuer, fetcher, clock).facts("2YotnFZFEjr1zCsicMWpAA") is None
    assert issuer.jwks_hits == 0


async def test_a_jwt_that_fails_is_invalid_not_unknown(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    tokens = source(issuer, fetcher, clock)
    with pytest.raises(InvalidTokenError) as caught:
        await tokens.facts(issuer.token(exp=int(clock.now()) - 3600))
    assert caught.value.reason == "jwt.expired"
    assert caught.value.description == "The access token has expired."


async def test_another_issuer_costs_no_key_fetch(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    with pytest.raises(InvalidTokenError, match="wrong_issuer"):
        await source(issuer, fetcher, clock).facts(issuer.token(iss="https://evil.example"))
    assert issuer.jwks_hits == 0


async def test_a_rotated_key_is_fetched_once_its_kid_is_seen(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    tokens = source(issuer, fetcher, clock)
    await tokens.facts(issuer.token())
    issuer.rotate()
    clock.advance(61)  # past the JWKS source's minimum refetch interval
    facts = await tokens.facts(issuer.token(cnf={"jkt": JKT}))
    assert facts is not None and facts.jkt == JKT
    assert issuer.jwks_hits == 2


async def test_a_key_server_failure_is_an_unavailable_source(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    issuer.jwks_status = 500
    with pytest.raises(SourceUnavailableError, match="HTTP status 500"):
        await source(issuer, fetcher, clock).facts(issuer.token())


async def test_metadata_naming_another_issuer_is_an_unavailable_source(
        issuer: JwtAccessTokenServer, fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    issuer.issuer = "https://other.example.com"  # the metadata says so; tokens say ISSUER
    token = issuer.token(iss=ISSUER)
    with pytest.raises(SourceUnavailableError, match="names issuer 'https://other"):
        await source(issuer, fetcher, clock, discover=True).facts(token)


async def test_metadata_without_jwks_uri_leaves_jwts_to_the_next_source(
        clock: FakeClock, fetcher: AiohttpFetcher) -> None:
    opaque = OpaqueTokenServer()  # its metadata has no jwks_uri
    runner, url = await start_app(opaque.app())
    try:
        jwt_issuer = JwtAccessTokenServer(issuer=METADATA["issuer"])
        discovered = MetadataJwksUri(fetcher, url + METADATA_PATH, METADATA["issuer"], clock)
        tokens = JwtAccessTokenSource(CachingJwksSource(fetcher, clock), discovered,
                                      AccessTokenRules(issuer=METADATA["issuer"]), clock)
        assert await tokens.facts(jwt_issuer.token()) is None
    finally:
        await runner.cleanup()


async def test_unreachable_metadata_is_retried_later_not_on_every_request(
        fetcher: AiohttpFetcher, clock: FakeClock) -> None:
    issuer = JwtAccessTokenServer()
    discovered = MetadataJwksUri(fetcher, "http://127.0.0.1:9" + METADATA_PATH, ISSUER, clock,
                                 retry_seconds=10)
    for _ in range(2):
        with pytest.raises(SourceUnavailableError, match="metadata"):
            await discovered.jwks_uri()
    runner, issuer.url = await start_app(issuer.app())
    try:
        discovered.metadata_url = issuer.url + METADATA_PATH
        with pytest.raises(SourceUnavailableError):  # the failure is remembered 10 s
            await discovered.jwks_uri()
        clock.advance(11)
        assert await discovered.jwks_uri() == f"{issuer.url}/jwks"
    finally:
        await runner.cleanup()


async def test_built_from_the_resource_settings(issuer: JwtAccessTokenServer,
                                                fetcher: AiohttpFetcher,
                                                clock: FakeClock) -> None:
    resource = {"enabled": True, "public_origin": "https://api.example.com",
                "check_listen": "127.0.0.1:8181", "jwt_allow_plain_typ": True,
                "jwt_audiences": ["https://api.example.com"]}
    jwks = CachingJwksSource(fetcher, clock)
    # No resource.jwks_uri: the keys are found through the upstream's metadata.
    discovered = jwt_source(make_settings(issuer.url, server={"issuer": ISSUER},
                                          resource=resource), fetcher, jwks, clock)
    facts = await discovered.facts(issuer.token(typ="JWT", cnf={"jkt": JKT}))
    assert facts is not None and facts.jkt == JKT
    configured = jwt_source(make_settings("http://127.0.0.1:9", server={"issuer": ISSUER},
                                          resource={**resource,
                                                    "jwks_uri": f"{issuer.url}/jwks"}),
                            fetcher, jwks, clock)
    with pytest.raises(InvalidTokenError, match="bad_audience"):
        await configured.facts(issuer.token(aud="https://other.example.com"))
