"""Running one coalesced batch (sidecar/adapters/redis/pipeline.py `Coalescer`): on one
master as one write and its replies (`run_commands`), on a Cluster as one pipeline per master
that owns the keys' slots (`run_on_cluster`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MaxConnectionsError, ResponseError

from sidecar.adapters.redis.pipeline import Command, LoopFairReads, Queued


async def run_pipeline(client: Redis | RedisCluster, batch: list[Queued]) -> None:
    """One non-transactional pipeline; each command gets its own reply or error reply. A
    transport failure (connection lost, timeout) fails every command of the batch: they
    shared the connection. (redis-py retries a connection error once, on a fresh connection,
    through the connection's Retry.)"""
    pipe = client.pipeline(transaction=False)
    for call in batch:
        pipe.execute_command(*call.command)
    try:
        results = await pipe.execute(raise_on_error=False)
    except Exception as exc:
        for call in batch:
            call.settle(exc)
        return
    for call, result in zip(batch, results, strict=True):
        call.settle(result)


async def run_commands(client: Redis, batch: list[Queued]) -> None:
    """Fast path for one master (standalone, Sentinel): what `run_pipeline`'s non-transactional
    pipeline does, written out: the batch packed and sent at once on one pooled connection,
    then its replies read in order, an error reply failing only its command, a connection
    error retried once on a fresh connection (the connection's Retry, as redis-py's pipeline
    does). Without the pipeline object, its command stack, the options each command is
    parsed for and the reply callbacks: redis-py was 17% of a DPoP request on Redis (py-spy).
    Replies come as Redis sends them (b"OK", None, bytes), which the store reads as it reads
    the callbacks' True, None and bytes."""
    pool = client.connection_pool
    try:
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    except Exception as exc:
        for call in batch:
            call.settle(exc)
        return
    try:
        replies = await connection.retry.call_with_retry(
            lambda: _send_and_read(connection, batch),
            lambda error: connection.disconnect())
    except Exception as exc:
        for call in batch:
            call.settle(exc)
        return
    finally:
        await pool.release(connection)
    for call, reply in zip(batch, replies, strict=True):
        call.settle(reply)


async def _send_and_read(connection: Any, batch: list[Queued]) -> list[Any]:
    await connection.send_packed_command(pack_commands([call.command for call in batch]))
    if isinstance(connection, LoopFairReads):
        return await connection.read_replies(len(batch))
    replies: list[Any] = []
    for _ in batch:
        try:
            replies.append(await connection.read_response())
        except ResponseError as error:
            replies.append(error)
    return replies


def pack_commands(commands: Sequence[Command]) -> bytes:
    """The commands as Redis reads a request (RESP arrays of bulk strings), packed by hiredis
    (C; a dependency), whose packer redis-py's connection calls too, through its Encoder and a
    generator for every argument: 7.2 against 1.1 us for the two commands of a DPoP request
    (tests/adapters/redis/test_batches.py compares the bytes)."""
    return b"".join([_pack_command(command) for command in commands])


# hiredis's stub types the command as a 1-tuple (`tuple[X]`, for `tuple[X, ...]`).
_pack_command: Callable[[Command], bytes] = hiredis.pack_command  # type: ignore[assignment]


async def run_on_cluster(client: RedisCluster, batch: list[Queued]) -> None:
    """One pipeline per master (by the slot of each key), run side by side."""
    try:
        # A no-op once the slot map is loaded; without a map redis-py would route at random.
        await client.initialize()
    except Exception as exc:
        for call in batch:
            call.settle(exc)
        return
    groups: dict[str, list[Queued]] = {}
    for call in batch:
        try:
            node = client.get_node_from_key(call.key)
        except Exception as exc:  # SlotNotCoveredError while the map is incomplete
            call.settle(exc)
            continue
        groups.setdefault(node.name if node is not None else "", []).append(call)
    await asyncio.gather(*(_run_on_one_master(client, group) for group in groups.values()))


async def _run_on_one_master(client: RedisCluster, group: list[Queued]) -> None:
    """A connection error (a master restarted, a failover) is retried once, at once, after
    the slot map is refreshed; a timeout never is (package docstring of sidecar.adapters.redis).
    """
    first = [Queued.of(call.key, call.command) for call in group]
    await run_pipeline(client, first)
    retry: list[Queued] = []
    for call, attempt in zip(group, first, strict=True):
        error = attempt.answer.exception()
        if isinstance(error, RedisConnectionError) and not isinstance(
                error, MaxConnectionsError):
            retry.append(call)
        else:
            call.settle(error if error is not None else attempt.answer.result())
    if not retry:
        return
    try:
        # What redis-py does after a connection error on a single command: mark the slot
        # map stale and reload it (under the client's lock, once for concurrent failures).
        client._initialize = True
        await client.initialize()
    except Exception as exc:
        for call in retry:
            call.settle(exc)
        return
    await run_pipeline(client, retry)
