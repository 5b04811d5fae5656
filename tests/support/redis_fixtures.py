"""Pytest fixtures that start real Redis deployments (tests/support/redis_server.py and
tests/support/redis_cluster.py).

Loaded by the root conftest through `pytest_plugins = ["tests.support.redis_fixtures"]`.

* `redis_server`: a fresh server for one test; use it to kill, pause or restart Redis.
* `redis_server_session`: one server shared by the session; tests that use it must keep to
  their own unique key prefix and must not stop, pause or flush it.
* `redis_cluster`: one 3-master Redis Cluster shared by the session (about 2 s to create);
  the same rules as `redis_server_session`. Tests that break nodes start a `LocalCluster` of
  their own.
* `redis_sentinel`: a fresh master + replica + sentinel for one test (about a second: the
  fixture waits until a write reaches the replica), free to fail over.
  `make_redis_sentinel(master_args=..., password=..., sentinel_password=...)` starts one with
  extra master options (e.g. `("--min-replicas-to-write", "1")`) or passwords; every one it
  made is stopped at teardown.
* `redis_sentinel_session`: one Sentinel setup shared by the session; the same rules as
  `redis_server_session` (and no failover).

All skip the test (with the reason shown by `-ra`) when no redis-server binary is found,
except under CI (the `CI` environment variable), where a missing binary is a failure: CI
must install what the tests need, and a skipped proof is no proof.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.support.redis_cluster import LocalCluster, LocalSentinel
from tests.support.redis_server import RedisServer, find_redis_server

MakeSentinel = Callable[..., LocalSentinel]


def redis_binary() -> str:
    """The redis-server binary, or skip (fail under CI)."""
    binary = find_redis_server()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not found under CI: scripts/test must install it")
        pytest.skip("redis-server not found (install it or set REDIS_SERVER)")
    return binary


def _new_server() -> RedisServer:
    return RedisServer(redis_binary())


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = _new_server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_session() -> Iterator[RedisServer]:
    server = _new_server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    cluster = LocalCluster(binary=redis_binary())
    cluster.start()  # stops what it started if it fails
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_redis_sentinel() -> Iterator[MakeSentinel]:
    binary = redis_binary()
    started: list[LocalSentinel] = []

    def make(master_args: Sequence[str] = (), password: str | None = None,
             sentinel_password: str | None = None) -> LocalSentinel:
        setup = LocalSentinel(binary=binary, master_args=master_args, password=password,
                              sentinel_password=sentinel_password)
        started.append(setup)
        setup.start()
        return setup

    try:
        yield make
    finally:
        for setup in started:
            setup.stop()


@pytest.fixture
def redis_sentinel(make_redis_sentinel: MakeSentinel) -> LocalSentinel:
    return make_redis_sentinel()


@pytest.fixture(scope="session")
def redis_sentinel_session() -> Iterator[LocalSentinel]:
    setup = LocalSentinel(binary=redis_binary())
    setup.start()  # stops what it started if it fails
    try:
        yield setup
    finally:
        setup.stop()
