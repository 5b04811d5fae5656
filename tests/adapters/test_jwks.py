"""The sources of `jwks_uri` keys (sidecar.adapters.jwks): a bounded TTL cache over a `Fetcher`
that never lets made-up `kid`s turn into traffic towards the key server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.adapters.jwks import CachingJwksSource, StaticJwksSource
from sidecar.core.jose.key_sets import (
    JwksError,
    parse_jwks,
)
from tests.support.fakes import FakeClock, ScriptedFetcher
from tests.support.keys import ec_key, public_jwk

URI = "https://keys.example.com/jwks"


def jwks_with(*kids: str) -> dict[str, Any]:
    return {"keys": [public_jwk(ec_key(), kid=kid) for kid in kids]}


async def test_cache_serves_fresh_keys_without_fetching() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock)
    first = await source.keys_for("c", URI, "a")
    clock.t += 299
    assert await source.keys_for("c", URI, "a") == first
    assert await source.keys_for("c", URI) == first
    assert fetcher.calls == 1 and source.fetches == 1


async def test_unknown_kid_refetches_at_most_once_per_minute() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock)
    await source.keys_for("c", URI, "a")
    clock.t += 61
    fetcher.documents[URI] = jwks_with("b")  # the key server rotated
    assert [k.kid for k in await source.keys_for("c", URI, "b")] == ["b"]
    assert fetcher.calls == 2
    # A made-up kid right after: no fetch, the cached set is served as it is.
    for _ in range(5):
        assert [k.kid for k in await source.keys_for("c", URI, "made-up")] == ["b"]
    assert fetcher.calls == 2
    clock.t += 30
    fetcher.documents[URI] = jwks_with("c")
    assert [k.kid for k in await source.keys_for("c", URI, "c")] == ["b"]  # 30 s: still no
    assert fetcher.calls == 2
    clock.t += 31
    assert [k.kid for k in await source.keys_for("c", URI, "c")] == ["c"]  # 61 s: refetched
    assert fetcher.calls == 3


async def test_unknown_certificate_thumbprint_refetches() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock)
    await source.keys_for("c", URI)
    clock.t += 61
    await source.keys_for("c", URI, x5t_s256="not-there")
    assert fetcher.calls == 2


async def test_expired_cache_is_refetched() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock, ttl_seconds=300)
    await source.keys_for("c", URI)
    clock.t += 301
    await source.keys_for("c", URI)
    assert fetcher.calls == 2


async def test_fetch_failure_serves_stale_keys_for_a_while_then_fails() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock, ttl_seconds=300, stale_if_error_seconds=600)
    keys = await source.keys_for("c", URI)
    fetcher.fail = True
    clock.t += 301
    assert await source.keys_for("c", URI) == keys  # stale, within the grace period
    assert await source.keys_for("c", URI) == keys  # and no second fetch within a minute
    assert fetcher.calls == 2
    clock.t += 700
    with pytest.raises(JwksError, match=r"jwks_uri of 'c'.*503"):
        await source.keys_for("c", URI)


async def test_failure_without_keys_is_remembered_for_a_minute() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    source = CachingJwksSource(fetcher, clock)
    for _ in range(3):
        with pytest.raises(JwksError, match="503"):
            await source.keys_for("c", URI, "a")
    assert fetcher.calls == 1
    clock.t += 61
    fetcher.documents[URI] = jwks_with("a")
    assert [k.kid for k in await source.keys_for("c", URI, "a")] == ["a"]


async def test_bad_document_is_an_error() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = {"keys": "nope"}
    with pytest.raises(JwksError, match="keys"):
        await CachingJwksSource(fetcher, clock).keys_for("c", URI)


async def test_concurrent_requests_share_one_fetch() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    fetcher.documents[URI] = jwks_with("a")
    fetcher.delay = 0.05
    source = CachingJwksSource(fetcher, clock)
    results = await asyncio.gather(*(source.keys_for("c", URI, "a") for _ in range(20)))
    assert fetcher.calls == 1
    assert all(r == results[0] for r in results)


async def test_cache_is_bounded() -> None:
    fetcher, clock = ScriptedFetcher(503), FakeClock(1_700_000_000.0)
    for i in range(5):
        fetcher.documents[f"{URI}/{i}"] = jwks_with("a")
    source = CachingJwksSource(fetcher, clock, max_uris=2)
    for i in range(5):
        await source.keys_for("c", f"{URI}/{i}")
    await source.keys_for("c", f"{URI}/0")  # evicted: fetched again
    assert fetcher.calls == 6


async def test_static_source() -> None:
    keys = parse_jwks(jwks_with("a"), strict=True)
    source = StaticJwksSource({URI: keys})
    assert await source.keys_for("c", URI) == keys
    with pytest.raises(JwksError, match="not available"):
        await source.keys_for("c", URI + "/other")
