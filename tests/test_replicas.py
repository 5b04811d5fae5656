"""Many replicas, one replay cache (issue: "Redis as the shared state of many replicas"):
real sidecar processes on real Redis deployments — standalone, a 3-master Cluster, Sentinel —
accept a single-use value exactly once, survive a failover, fail closed when Redis dies or
hangs, and recover without a restart."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.support.dpop import DpopKey
from tests.support.process import SidecarProcess
from tests.support.redis_cluster import LocalSentinel
from tests.support.redis_server import RedisServer
from tests.support.servers import RecordingUpstream

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = "grant_type=client_credentials&client_id=app"
HTU = "https://as.example.com/token"
# Generous waits for processes on a loaded 2-core machine; what a test asserts is that an
# answer comes and what it is, never how fast.
STORE_TIMEOUTS = {"connect_timeout_seconds": 0.5, "command_timeout_seconds": 0.5}
Start = Callable[..., Awaitable[SidecarProcess]]


@pytest.fixture
async def start_sidecar(tmp_path: Path, upstream: RecordingUpstream) -> AsyncIterator[Start]:
    started: list[SidecarProcess] = []

    async def start(store_url: str, *, defaults: bool = False,
                    **sections: dict[str, Any]) -> SidecarProcess:
        """A replica on `store_url`; `defaults` keeps the default [store] bounds."""
        store = {"url": store_url, **({} if defaults else STORE_TIMEOUTS),
                 **sections.pop("store", {})}
        process = SidecarProcess(tmp_path / f"replica-{len(started)}.toml",
                                 {"upstream": {"url": upstream.url}, "store": store,
                                  **sections})
        started.append(process)
        await process.start()
        return process

    yield start
    for process in started:
        await process.stop()


async def post(session: aiohttp.ClientSession, sidecar: SidecarProcess, body: str,
               headers: dict[str, str]) -> tuple[int, str]:
    async with session.post(sidecar.url + "/token", data=body,
                            headers={**FORM, **headers}) as response:
        return response.status, (await response.json()).get("error", "")


@pytest.fixture(params=["standalone", "cluster", "sentinel"])
def deployment_url(request: pytest.FixtureRequest) -> str:
    """A healthy Redis of each deployment, shared by the session (keys are unique per test)."""
    if request.param == "standalone":
        return str(request.getfixturevalue("redis_server_session").url)
    if request.param == "cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    return str(request.getfixturevalue("redis_sentinel_session").url)


async def burst(replicas: list[SidecarProcess], proofs: list[str]) -> Counter[tuple[int, str]]:
    """Every proof sent at once (one connection each), alternately to each replica."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        return Counter(await asyncio.gather(*(
            post(session, replicas[i % len(replicas)], CC, {"DPoP": proof})
            for i, proof in enumerate(proofs))))


async def test_a_burst_on_a_healthy_redis_is_never_refused(start_sidecar: Start,
                                                           deployment_url: str,
                                                           upstream: RecordingUpstream) -> None:
    """With the default [store] settings, on replicas that have just started, a healthy Redis
    never turns a valid request into a 503; and one proof sent at once to both replicas is
    accepted exactly once."""
    prefix = f"burst-{uuid.uuid4().hex}:"
    replicas = list(await asyncio.gather(*(
        start_sidecar(deployment_url, defaults=True, store={"key_prefix": prefix})
        for _ in range(2))))
    key = DpopKey()
    assert await burst(replicas, [key.proof(HTU) for _ in range(500)]) == {(200, ""): 500}
    assert len(upstream.received) == 500
    counted = await burst(replicas, [key.proof(HTU)] * 200)
    assert counted == {(200, ""): 1, (400, "invalid_dpop_proof"): 199}
    assert len(upstream.received) == 501


async def test_one_client_assertion_two_processes(start_sidecar: Start,
                                                  redis_server: RedisServer,
                                                  upstream: RecordingUpstream,
                                                  tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "k1"}
    registry = tmp_path / "clients.toml"
    registry.write_text(f'''
[[clients]]
client_id = "signer"
token_endpoint_auth_method = "private_key_jwt"
jwks = '{json.dumps({"keys": [jwk]})}'
grant_types = ["client_credentials"]
''')
    replicas = [await start_sidecar(redis_server.url,
                                    clients={"registry_file": str(registry)})
                for _ in range(2)]
    now = int(time.time())
    assertion = jwt.encode({"iss": "signer", "sub": "signer", "aud": "https://as.example.com",
                            "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60},
                           key, algorithm="ES256", headers={"kid": "k1"})
    body = ("grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth"
            f"%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}")
    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(post(session, replicas[i % 2], body, {})
                                         for i in range(200)))
    counted = Counter(results)
    assert counted[(200, "")] == 1, counted
    assert counted[(401, "invalid_client")] == 199, counted
    assert len(upstream.received) == 1


async def test_sentinel_failover_in_the_middle_of_traffic(start_sidecar: Start,
                                                          redis_sentinel: LocalSentinel,
                                                          upstream: RecordingUpstream) -> None:
    replicas = [await start_sidecar(redis_sentinel.url) for _ in range(2)]
    accepted: Counter[str] = Counter()
    seen_statuses: Counter[int] = Counter()
    proofs: list[str] = []
    stop = asyncio.Event()

    async def traffic(session: aiohttp.ClientSession) -> None:
        index = 0
        while not stop.is_set():
            proof = DpopKey().proof(HTU)
            proofs.append(proof)
            # Every fresh proof is sent to one replica, then replayed at the other.
            for replica in (replicas[index % 2], replicas[(index + 1) % 2]):
                status, _ = await post(session, replica, CC, {"DPoP": proof})
                seen_statuses[status] += 1
                if status == 200:
                    accepted[proof] += 1
            index += 1

    async with aiohttp.ClientSession() as session:
        runner = asyncio.create_task(traffic(session))
        await asyncio.sleep(1.0)
        old = redis_sentinel.kill_master()
        await asyncio.to_thread(redis_sentinel.wait_for_new_master, old)
        # After the failover the replicas serve again, without a restart.
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            status, _ = await post(session, replicas[0], CC, {"DPoP": DpopKey().proof(HTU)})
            if status == 200:
                break
            assert asyncio.get_running_loop().time() < deadline, "no recovery after failover"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)
        stop.set()
        await runner
        # No proof was ever accepted twice, before, during or after the failover; and every
        # proof accepted is refused when replayed now.
        assert accepted and max(accepted.values()) == 1
        for proof in list(accepted)[-20:]:
            assert (await post(session, replicas[1], CC, {"DPoP": proof}))[0] == 400
    assert set(seen_statuses) <= {200, 400, 503}, seen_statuses
    # Each proof reached the upstream at most once. One may have reached it and still been
    # answered 503: its access-token binding could not be written during the failover, and a
    # token whose binding was not recorded is not handed out (README "Bound tokens").
    reached = Counter(received.headers["DPoP"] for received in upstream.received)
    assert max(reached.values()) == 1
    assert set(accepted) <= set(reached)


async def test_redis_killed_fails_closed_then_recovers(start_sidecar: Start,
                                                       redis_server: RedisServer,
                                                       upstream: RecordingUpstream) -> None:
    sidecar = await start_sidecar(redis_server.url)
    async with aiohttp.ClientSession() as session:
        assert (await post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)}))[0] == 200
        redis_server.kill()
        for _ in range(10):
            status, error = await post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)})
            assert (status, error) == (503, "temporarily_unavailable")
        assert len(upstream.received) == 1  # nothing unchecked was forwarded
        async with session.get(sidecar.admin_url + "/readyz") as response:
            assert response.status == 503
        redis_server.restart()
        deadline = asyncio.get_running_loop().time() + 10
        while (await post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)}))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, "no recovery"
            await asyncio.sleep(0.1)
        async with session.get(sidecar.admin_url + "/readyz") as response:
            assert response.status == 200


async def test_redis_that_hangs_does_not_hang_requests(start_sidecar: Start,
                                                       redis_server: RedisServer,
                                                       upstream: RecordingUpstream) -> None:
    sidecar = await start_sidecar(redis_server.url, store={"command_timeout_seconds": 0.2})
    async with aiohttp.ClientSession() as session:
        assert (await post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)}))[0] == 200
        redis_server.pause()
        try:
            # Bounded: the configured 0.2 s timeout, far inside this generous bound.
            status, error = await asyncio.wait_for(
                post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)}), 5)
            assert (status, error) == (503, "temporarily_unavailable")
        finally:
            redis_server.resume()
        deadline = asyncio.get_running_loop().time() + 10
        while (await post(session, sidecar, CC, {"DPoP": DpopKey().proof(HTU)}))[0] != 200:
            assert asyncio.get_running_loop().time() < deadline, "no recovery"
            await asyncio.sleep(0.1)
    assert len(upstream.received) == 2
