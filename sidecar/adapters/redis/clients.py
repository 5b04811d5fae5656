"""The redis-py clients of each deployment, every wait bounded, and the pings that keep their
connections warm."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from sidecar.adapters.redis.options import RedisOptions
from sidecar.adapters.redis.pipeline import (
    FairConnection,
    FairSentinelConnection,
    FairSentinelSSLConnection,
    FairSSLConnection,
)
from sidecar.adapters.redis.urls import RedisURL


def _connect_retry() -> Retry:
    """One immediate retry on a connection error, none on a timeout (package docstring)."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def _tls_kwargs(options: RedisOptions) -> dict[str, Any]:
    return {
        "ssl_ca_certs": options.ssl_ca_certs,
        "ssl_certfile": options.ssl_certfile,
        "ssl_keyfile": options.ssl_keyfile,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": True,
    }


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def standalone_client(url: RedisURL, options: RedisOptions) -> Redis:
    host, port = url.hosts[0]
    # The credentials go as arguments, not in the URL handed to redis-py.
    plain = f"{url.scheme}://{_bracketed(host)}:{port}/{url.db}"
    if url.options:
        plain += "?" + urlencode(url.options)
    kwargs: dict[str, Any] = _tls_kwargs(options) if url.tls else {}
    pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
        plain, **_pool_kwargs(options), **kwargs)
    # from_url picks the class from the scheme; the same, with reads that measure Redis.
    pool.connection_class = FairSSLConnection if url.tls else FairConnection
    # from_pool: the client owns the pool, so closing the client closes the pool.
    return Redis.from_pool(pool)


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """redis-py's SentinelConnectionPool (every new connection asks the sentinels for the
    master) with BlockingConnectionPool's bounded wait for a free connection: a burst beyond
    `max_connections` waits up to the pool timeout instead of failing at once."""


def sentinel_clients(url: RedisURL, options: RedisOptions) -> tuple[Redis, Sentinel]:
    assert url.service_name is not None
    tls: dict[str, Any] = {"ssl": True, **_tls_kwargs(options)} if url.tls else {}
    sentinel_kwargs: dict[str, Any] = {
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_timeout": options.socket_timeout,
        "retry": _connect_retry(),
        "max_connections": options.max_connections,
        "password": options.sentinel_password,
        **tls,
    }
    sentinel = Sentinel(list(url.hosts), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis 8.2
    client: Redis = sentinel.master_for(
        url.service_name, connection_pool_class=_BlockingSentinelPool, db=url.db,
        connection_class=FairSentinelSSLConnection if url.tls else FairSentinelConnection,
        **_pool_kwargs(options), **tls)
    return client, sentinel


def _pool_kwargs(options: RedisOptions) -> dict[str, Any]:
    """The connection-pool options standalone and Sentinel masters share: credentials and
    every bounded wait (connect, command, a free connection)."""
    return {
        "username": options.username,
        "password": options.password,
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_timeout": options.socket_timeout,
        "retry": _connect_retry(),
        "max_connections": options.max_connections,
        "timeout": options.pool_timeout,
        "client_name": options.client_name,
    }


def cluster_client(url: RedisURL, options: RedisOptions) -> RedisCluster:
    tls: dict[str, Any] = {"ssl": True, **_tls_kwargs(options)} if url.tls else {}
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in url.hosts],
        # No cluster-level retries (they would retry timeouts too); see the package docstring.
        retry=Retry(NoBackoff(), 0),
        # A MOVED reply patches that slot's owner. The default (5) also closes the whole
        # client every fifth MOVED, cutting the connections of every command in flight.
        reinitialize_steps=0,
        max_connections=options.max_connections,
        username=options.username,
        password=options.password,
        client_name=options.client_name,
        socket_connect_timeout=options.socket_connect_timeout,
        socket_timeout=options.socket_timeout,
        **tls,
    )
    # RedisCluster takes no connection class: its nodes, present and future, read it from
    # the keyword arguments they are made with (one dict, shared with the nodes manager).
    fair = FairSSLConnection if url.tls else FairConnection
    client.connection_kwargs["connection_class"] = fair
    for node in client.startup_nodes:
        node.connection_class = fair
    return client


async def ping_pooled(client: Redis, count: int) -> None:
    """Hold `count` pooled connections at once (so the pool opens that many) and ping each."""
    pool = client.connection_pool
    held = await asyncio.gather(*(pool.get_connection()  # type: ignore[no-untyped-call]
                                  for _ in range(count)),
                                return_exceptions=True)
    try:
        connections = [c for c in held if not isinstance(c, BaseException)]
        await asyncio.gather(*(_ping(c) for c in connections))
        errors = [e for e in held if isinstance(e, Exception)]
        if errors:
            raise errors[0]
    finally:
        for connection in held:
            if not isinstance(connection, BaseException):
                await pool.release(connection)


async def ping_connections(node: ClusterNode, count: int) -> None:
    held = []
    try:
        for _ in range(count):
            held.append(node.acquire_connection())
        await asyncio.gather(*(_ping(c) for c in held))
    finally:
        for connection in held:
            node.release(connection)


async def _ping(connection: Any) -> None:
    await connection.send_command("PING")
    await connection.read_response()
