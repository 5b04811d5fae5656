"""sidecar.adapters.recorded_binding: the recorded access-token binding as a token source,
over a real Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest

from sidecar.adapters.recorded_binding import RecordedBindingSource
from sidecar.adapters.redis.store import RedisStore
from sidecar.core.access_binding import ACCESS_BINDING
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.ports import StoreError, SystemClock
from tests.support.redis_server import RedisServer
from tests.support.resource import bind


@pytest.fixture
async def store(redis_server_session: RedisServer) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_server_session.url, f"recorded-{uuid.uuid4().hex}:")
    yield store
    await store.close()


async def test_a_recorded_binding_is_the_tokens_facts(store: RedisStore) -> None:
    exp = int(time.time()) + 600
    await bind(store, "at-1", jkt="key-1", client_id="app", scope="read", exp=exp)
    facts = await RecordedBindingSource(store, SystemClock()).facts("at-1")
    assert facts == TokenFacts(source="recorded", jkt="key-1", client_id="app", scope="read",
                               expires_at=exp)
    await bind(store, "at-2", x5t_s256="thumb")
    facts = await RecordedBindingSource(store, SystemClock()).facts("at-2")
    assert facts is not None and (facts.jkt, facts.x5t_s256) == (None, "thumb")


async def test_unknown_unreadable_or_expired_is_none(store: RedisStore) -> None:
    source = RecordedBindingSource(store, SystemClock())
    assert await source.facts("never-recorded") is None
    await store.set_binding(ACCESS_BINDING, "garbage", "{not json", 60)
    assert await source.facts("garbage") is None
    await bind(store, "old", jkt="k", exp=int(time.time()) - 1)
    assert await source.facts("old") is None


async def test_a_store_that_cannot_answer_raises(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "down:")
    try:
        redis_server.kill()
        with pytest.raises(StoreError):
            await RecordedBindingSource(store, SystemClock()).facts("at-1")
    finally:
        await store.close()
