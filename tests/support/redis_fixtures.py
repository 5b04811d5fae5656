"""Pytest fixtures that start a real `redis-server` (see tests/support/redis_server.py).

Loaded by the root conftest through `pytest_plugins = ["tests.support.redis_fixtures"]`.

* `redis_server`: a fresh server for one test; use it to kill, pause or restart Redis.
* `redis_server_session`: one server shared by the session; tests that use it must keep to
  their own unique key prefix and must not stop, pause or flush it.

Both skip the test (with the reason shown by `-ra`) when no redis-server binary is found,
except under CI (the `CI` environment variable), where a missing binary is a failure: CI
must install what the tests need, and a skipped proof is no proof.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.redis_server import RedisServer, find_redis_server


def _new_server() -> RedisServer:
    binary = find_redis_server()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server not found under CI: scripts/test must install it")
        pytest.skip("redis-server not found (install it or set REDIS_SERVER)")
    return RedisServer(binary)


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
