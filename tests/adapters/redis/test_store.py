"""RedisStore against a real redis-server: atomic replay checks, bindings, failures, recovery."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.adapters import RedisStore, open_store
from sidecar.adapters.redis.pipeline import FairConnection
from sidecar.ports import StoreError, SystemClock, store_key
from sidecar.settings import StoreSettings
from tests.support.redis_server import RedisServer

# Generous: a failure must come back as StoreError instead of hanging; this is not a speed bound.
NO_HANG = 5.0
# Stores made by `make_store` get relaxed bounds so that a loaded CI machine cannot turn a
# burst of connects into timeouts; the tests of the real bounds pass them explicitly.
RELAXED = {"socket_connect_timeout": 2.0, "socket_timeout": 2.0, "pool_timeout": 2.0}
PRODUCTION = {"socket_connect_timeout": 0.1, "socket_timeout": 0.1, "pool_timeout": 0.1}

MakeStore = Callable[..., RedisStore]


def unique_prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture
async def make_store() -> AsyncIterator[MakeStore]:
    """RedisStore factory (relaxed bounds unless given); every store made is closed at teardown."""
    stores: list[RedisStore] = []

    def make(url: str, prefix: str | None = None, **kwargs: Any) -> RedisStore:
        store = RedisStore.from_url(url, prefix or unique_prefix(), **{**RELAXED, **kwargs})
        stores.append(store)
        return store

    yield make
    for store in stores:
        await store.close()


@pytest.fixture
def store(make_store: MakeStore, redis_server_session: RedisServer) -> RedisStore:
    return make_store(redis_server_session.url)


@pytest.fixture
async def raw(redis_server_session: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server_session.url)
    yield client
    await client.aclose()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = NO_HANG) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


# -- behaviour -----------------------------------------------------------------------------


async def test_first_use_then_replay(store: RedisStore) -> None:
    assert await store.first_use("dpop_jti", "jti-1", 60) is True
    assert await store.first_use("dpop_jti", "jti-1", 60) is False
    assert await store.first_use("dpop_jti", "jti-2", 60) is True
    assert await store.first_use("client_assertion_jti", "jti-1", 60) is True


async def test_value_usable_again_after_ttl(store: RedisStore, raw: Redis) -> None:
    assert await store.first_use("dpop_jti", "jti", 0.05) is True
    pttl = await raw.pttl(store_key(store.prefix, "dpop_jti", "jti"))
    assert 0 < pttl <= 50
    assert await store.first_use("dpop_jti", "jti", 0.05) is False
    await asyncio.sleep(0.06)

    async def usable_again() -> bool:
        return await store.first_use("dpop_jti", "jti", 0.05)

    await eventually(usable_again)  # Redis expires keys lazily or within its next cycle


async def test_sub_millisecond_ttl_is_rounded_up(store: RedisStore) -> None:
    assert await store.first_use("dpop_jti", "jti", 0) is True  # PX 0 would be an error


async def test_bindings(store: RedisStore, raw: Redis) -> None:
    assert await store.get_binding("refresh", "rt-1") is None
    await store.set_binding("refresh", "rt-1", "jkt-A", 30 * 86400)
    assert await store.get_binding("refresh", "rt-1") == "jkt-A"
    assert await store.get_binding("refresh", "rt-2") is None
    pttl = await raw.pttl(store_key(store.prefix, "refresh", "rt-1"))
    assert 29 * 86400 * 1000 < pttl <= 30 * 86400 * 1000
    await store.set_binding("refresh", "rt-1", "jkt-B", 60)
    assert await store.get_binding("refresh", "rt-1") == "jkt-B"


async def test_binding_expires(store: RedisStore) -> None:
    await store.set_binding("refresh", "rt", "jkt", 0.05)
    assert await store.get_binding("refresh", "rt") == "jkt"
    await asyncio.sleep(0.06)

    async def gone() -> bool:
        return await store.get_binding("refresh", "rt") is None

    await eventually(gone)


async def test_keys_are_hashed(store: RedisStore, raw: Redis) -> None:
    token = "refresh-token-secret-value"
    jti = "jti-secret-value"
    await store.set_binding("refresh", token, "jkt-thumbprint", 60)
    await store.first_use("dpop_jti", jti, 60)
    keys = {k.decode() async for k in raw.scan_iter(match=f"{store.prefix}*")}
    assert keys == {
        store_key(store.prefix, "refresh", token),
        store_key(store.prefix, "dpop_jti", jti),
    }
    for k in keys:
        assert token not in k
        assert jti not in k
        assert token.encode() not in (await raw.get(k) or b"")


async def test_concurrent_first_use_of_one_value_wins_once(store: RedisStore) -> None:
    calls = (store.first_use("dpop_jti", "contended", 60) for _ in range(200))
    results = await asyncio.gather(*calls)
    assert results.count(True) == 1
    assert results.count(False) == 199


async def test_two_replicas_race_and_one_wins(
    make_store: MakeStore, redis_server_session: RedisServer
) -> None:
    prefix = unique_prefix()
    # Two stores = two connection pools, as two sidecar replicas sharing one Redis.
    replica_a = make_store(redis_server_session.url, prefix)
    replica_b = make_store(redis_server_session.url, prefix)
    values = [f"jti-{i}" for i in range(50)]
    calls = [
        replica.first_use("dpop_jti", value, 60)
        for value in values
        for _ in range(5)
        for replica in (replica_a, replica_b)
    ]
    results = await asyncio.gather(*calls)
    per_value = [results[i * 10 : (i + 1) * 10] for i in range(len(values))]
    assert all(r.count(True) == 1 for r in per_value)


async def test_ping_says_whether_redis_answers(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    # What /readyz reports: ready while Redis answers, not ready while it does not.
    store = make_store(redis_server.url, **PRODUCTION)
    await store.ping()
    redis_server.pause()
    try:
        with pytest.raises(StoreError, match="Timeout"):
            await asyncio.wait_for(store.ping(), NO_HANG)
    finally:
        redis_server.resume()
    await store.ping()


async def test_close_closes_the_pool(
    make_store: MakeStore, redis_server_session: RedisServer, raw: Redis
) -> None:
    name = f"close-{uuid.uuid4().hex[:12]}"
    store = make_store(redis_server_session.url, client_name=name)
    await asyncio.gather(*(store.first_use("dpop_jti", f"v{i}", 60) for i in range(20)))

    async def connections() -> int:
        return sum(1 for c in await raw.client_list() if c.get("name") == name)

    assert await connections() > 0
    await store.close()

    async def none_left() -> bool:
        return await connections() == 0

    await eventually(none_left)


def pool_settings(store: RedisStore) -> tuple[object, ...]:
    assert isinstance(store._client, Redis)
    pool = store._client.connection_pool
    assert isinstance(pool, BlockingConnectionPool)  # a burst waits for a connection
    kwargs = pool.connection_kwargs
    return (kwargs["socket_connect_timeout"], kwargs["socket_timeout"], pool.timeout,
            pool.max_connections)


async def test_bounds_are_passed_to_the_pool(make_store: MakeStore) -> None:
    default = RedisStore.from_url("redis://127.0.0.1:1/0", "p:")
    try:
        assert pool_settings(default) == (0.1, 0.1, 0.1, 100)
    finally:
        await default.close()
    custom = make_store("redis://127.0.0.1:1/0", socket_connect_timeout=0.3, socket_timeout=0.4,
                        pool_timeout=0.5, max_connections=7)
    assert pool_settings(custom) == (0.3, 0.4, 0.5, 7)


async def test_a_burst_beyond_the_pool_size_waits_for_a_connection(
    make_store: MakeStore, redis_server_session: RedisServer
) -> None:
    store = make_store(redis_server_session.url, max_connections=5, pool_timeout=NO_HANG)
    results = await asyncio.gather(*(store.first_use("dpop_jti", f"v{i}", 60) for i in range(300)))
    assert all(results)


def test_refuses_other_schemes() -> None:
    with pytest.raises(ValueError, match="redis:// or rediss://") as info:
        RedisStore("redis+sentinel://u:hunter2@h:26379/m", "p:")
    assert "hunter2" not in str(info.value)


async def test_open_store_redis(redis_server_session: RedisServer) -> None:
    prefix = unique_prefix()
    settings = StoreSettings(url=redis_server_session.url, key_prefix=prefix)
    store = open_store(settings, SystemClock())
    try:
        assert isinstance(store, RedisStore)
        assert store.prefix == prefix
        assert await store.first_use("dpop_jti", "x", 60) is True
        assert await store.first_use("dpop_jti", "x", 60) is False
    finally:
        await store.close()


async def test_open_store_rediss() -> None:
    store = open_store(StoreSettings(url="rediss://127.0.0.1:1/0"), SystemClock())
    try:
        assert isinstance(store, RedisStore)
    finally:
        await store.close()


# -- failures and recovery (each on a server of its own) -------------------------------------


async def assert_all_fail(store: RedisStore, secret: str) -> None:
    operations: list[Awaitable[object]] = [
        store.first_use("dpop_jti", secret, 60),
        store.get_binding("refresh", secret),
        store.set_binding("refresh", secret, secret, 60),
        store.ping(),
    ]
    for operation in operations:
        with pytest.raises(StoreError) as info:
            await asyncio.wait_for(operation, NO_HANG)
        assert secret not in str(info.value)


async def test_redis_killed_then_restarted(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    store = make_store(redis_server.url)
    assert await store.first_use("dpop_jti", "before", 60) is True
    redis_server.kill()
    await assert_all_fail(store, "secret-value-1")
    redis_server.restart()
    # The same store object: redis-py reconnects by itself.
    assert await store.first_use("dpop_jti", "after", 60) is True
    assert await store.first_use("dpop_jti", "after", 60) is False
    await store.ping()


async def test_redis_restarted_while_idle(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    store = make_store(redis_server.url)
    await asyncio.gather(*(store.first_use("dpop_jti", f"v{i}", 60) for i in range(10)))
    redis_server.restart()  # every pooled connection is now closed by the server
    # A stale pooled connection is detected when taken from the pool: no failed request.
    assert await store.first_use("dpop_jti", "after", 60) is True
    assert await store.get_binding("refresh", "rt") is None


async def test_redis_down_at_start_then_up(make_store: MakeStore) -> None:
    server = RedisServer()
    server.start()
    server.kill()  # keeps the port, nothing listens
    try:
        store = make_store(server.url)
        await assert_all_fail(store, "secret-value-2")
        server.start()
        assert await store.first_use("dpop_jti", "x", 60) is True
    finally:
        server.stop()


async def test_redis_paused_times_out_then_resumes(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    store = make_store(redis_server.url, **PRODUCTION)
    assert await store.first_use("dpop_jti", "before", 60) is True  # a pooled connection
    redis_server.pause()
    try:
        with pytest.raises(StoreError, match="Timeout") as info:
            await asyncio.wait_for(store.first_use("dpop_jti", "secret-value-3", 60), NO_HANG)
        assert "secret-value-3" not in str(info.value)
        # A fresh pool: the kernel accepts the connection, but the handshake times out.
        fresh = make_store(redis_server.url, **PRODUCTION)
        with pytest.raises(StoreError):
            await asyncio.wait_for(fresh.first_use("dpop_jti", "x", 60), NO_HANG)
    finally:
        redis_server.resume()
    assert await store.first_use("dpop_jti", "after", 60) is True
    assert await store.first_use("dpop_jti", "after", 60) is False
    assert await fresh.first_use("dpop_jti", "y", 60) is True


async def test_server_errors_become_store_errors_without_the_value(
    make_store: MakeStore, redis_server: RedisServer
) -> None:
    secret = "refresh-token-secret-value"
    store = make_store(redis_server.url)
    raw = Redis.from_url(redis_server.url)
    try:
        await raw.lpush(store_key(store.prefix, "refresh", secret), secret)  # not a string
        with pytest.raises(StoreError, match="WRONGTYPE") as info:
            await store.get_binding("refresh", secret)
        assert secret not in str(info.value)
        assert info.value.__cause__ is None

        await raw.config_set("maxmemory-policy", "noeviction")
        await raw.config_set("maxmemory", "1")
        with pytest.raises(StoreError, match="OOM") as info:
            await store.first_use("dpop_jti", secret, 60)
        assert secret not in str(info.value)
        with pytest.raises(StoreError, match="OOM"):
            await store.set_binding("refresh", "other", secret, 60)
    finally:
        await raw.aclose()


# -- timeouts measure Redis, not the event loop ----------------------------------------------

# Keeps Redis busy for 10 ms, then answers: a healthy Redis, well inside a 0.1 s timeout.
ANSWER_IN_10_MS = """
local t = redis.call('TIME')
local start = t[1] * 1000000 + t[2]
repeat
  local now = redis.call('TIME')
until now[1] * 1000000 + now[2] - start >= 10000
return 1
"""


async def test_a_reply_that_came_while_the_loop_was_busy_is_not_a_timeout(
    redis_server_session: RedisServer,
) -> None:
    # (redis-py's own Connection times this read out: its timer wins over the reply.)
    connection = FairConnection(host=redis_server_session.host,
                                port=redis_server_session.port, socket_timeout=0.1)
    try:
        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
        await connection.send_command("EVAL", ANSWER_IN_10_MS, 0)
        # While the read waits, the loop turns to other work for 0.3 s (CPU-bound, as a burst
        # of requests is): the reply arrives after 10 ms, the read's timer expires after
        # 0.1 s, and the loop sees both at once.
        asyncio.get_running_loop().call_later(0.001, time.sleep, 0.3)
        assert await connection.read_response() == 1
    finally:
        await connection.disconnect()


async def test_a_reply_that_never_comes_is_a_timeout(redis_server: RedisServer) -> None:
    connection = FairConnection(host=redis_server.host, port=redis_server.port,
                                socket_timeout=0.1)
    try:
        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it bare
        redis_server.pause()
        try:
            await connection.send_command("PING")
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(connection.read_response(), NO_HANG)
        finally:
            redis_server.resume()
    finally:
        await connection.disconnect()
