"""Bursts over two replicas: does a healthy Redis ever turn a valid request into a 503?

    .venv/bin/python bench/burst.py                       # standalone, Cluster and Sentinel
    .venv/bin/python bench/burst.py --deployment cluster --distinct 1000 --same 200

For each deployment: a local redis-server setup (tests/support: one server, a 3-master
Cluster, or master + replica + sentinel), an aiohttp upstream, and two real sidecar processes
(`token-sidecar serve`, the default `[store]` settings but `url` and `key_prefix`). Then, all
requests sent at once, one connection each, alternately to each replica:

1. `--distinct` requests with distinct valid DPoP proofs right after start (cold);
2. the same again (warm);
3. one proof sent `--same` times (exactly one may pass).

It prints, per burst, the answers by status and OAuth error, the requests the upstream got,
and the time the burst took. Exit status 1 when a burst on a healthy Redis got a 503.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.dpop import DpopKey
from tests.support.process import SidecarProcess
from tests.support.redis_cluster import LocalCluster, LocalSentinel
from tests.support.redis_server import RedisServer, find_redis_server
from tests.support.servers import RecordingUpstream, start_app

HTU = "https://as.example.com/token"
BODY = "grant_type=client_credentials&client_id=app"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DEPLOYMENTS = ("standalone", "cluster", "sentinel")


@contextmanager
def redis_deployment(name: str, binary: str) -> Iterator[str]:
    """A running deployment of `name`; yields its store.url."""
    with ExitStack() as stack:
        if name == "standalone":
            server = RedisServer(binary)
            server.start()
            stack.callback(server.stop)
            yield server.url
        elif name == "cluster":
            yield stack.enter_context(LocalCluster(binary=binary)).url
        else:
            yield stack.enter_context(LocalSentinel(binary=binary)).url


async def send(session: aiohttp.ClientSession, replica: SidecarProcess,
               proof: str) -> tuple[int, str]:
    """The status and OAuth error; a 503 says whether Redis failed or the replica shed it."""
    async with session.post(replica.url + "/token", data=BODY,
                            headers={**FORM, "DPoP": proof}) as response:
        body = await response.json(content_type=None)
    error = str(body.get("error", "")) if isinstance(body, dict) else ""
    if response.status == 503:
        described = str(body.get("error_description", "")) if isinstance(body, dict) else ""
        error += " (shed)" if "capacity" in described else " (store)"
    return response.status, error


async def burst(replicas: list[SidecarProcess], proofs: list[str]) -> tuple[Counter[str], float]:
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        answers = await asyncio.gather(*(send(session, replicas[i % len(replicas)], proof)
                                         for i, proof in enumerate(proofs)))
    counted = Counter(f"{status} {error}".strip() for status, error in answers)
    return counted, time.perf_counter() - started


async def run_deployment(name: str, binary: str, distinct: int, same: int) -> bool:
    """Print the figures of one deployment; False when a burst got a 503."""
    upstream = RecordingUpstream()
    runner, upstream.url = await start_app(upstream.app())
    healthy = True
    with tempfile.TemporaryDirectory() as directory, redis_deployment(name, binary) as url:
        store = {"url": url, "key_prefix": f"burst-{uuid.uuid4().hex[:8]}:"}
        replicas = [SidecarProcess(Path(directory) / f"replica-{i}.toml",
                                   {"upstream": {"url": upstream.url}, "store": store,
                                    "logging": {"level": "warning"}})
                    for i in range(2)]
        try:
            await asyncio.gather(*(replica.start() for replica in replicas))
            key = DpopKey()
            for label, proofs in (
                    (f"{distinct} distinct, cold", [key.proof(HTU) for _ in range(distinct)]),
                    (f"{distinct} distinct, warm", [key.proof(HTU) for _ in range(distinct)]),
                    (f"1 proof x {same}", [key.proof(HTU)] * same)):
                before = len(upstream.received)
                counted, seconds = await burst(replicas, proofs)
                reached = len(upstream.received) - before
                healthy = healthy and not any(k.startswith("503") for k in counted)
                answers = ", ".join(f"{n} x {k}" for k, n in sorted(counted.items()))
                print(f"{name:<10} {label:<22} {answers:<48} upstream {reached:>4}  "
                      f"{seconds:.2f} s", flush=True)
        finally:
            await asyncio.gather(*(replica.stop() for replica in replicas))
            await runner.cleanup()
    return healthy


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment", choices=(*DEPLOYMENTS, "all"), default="all")
    parser.add_argument("--distinct", type=int, default=500)
    parser.add_argument("--same", type=int, default=200)
    args = parser.parse_args()
    binary = find_redis_server()
    if binary is None:
        print("redis-server not found (install it or set REDIS_SERVER)", file=sys.stderr)
        return 2
    names = DEPLOYMENTS if args.deployment == "all" else (args.deployment,)
    healthy = True
    for name in names:
        healthy = await run_deployment(name, binary, args.distinct, args.same) and healthy
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
