"""Fallback load generator when `wrk` is not installed: the same job as bench/dpop.lua.

    python bench/pyload.py URL CONNECTIONS DURATION PROOFS_PREFIX|-

Keep-alive HTTP/1.1 connections over raw asyncio streams, each request pre-formatted as
bytes (so per-request work is one write and one read of the answer). It prints the same
"BENCH_RESULT {json}" line as the wrk script. A Python generator on one core is much weaker
than wrk: it can be the bottleneck, which bench/run.py reports (load CPU near 100%).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

BODY = b"grant_type=client_credentials&client_id=bench-client"


def build_requests(host: str, path: str, proofs: list[str]) -> list[bytes]:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(BODY)}\r\n").encode()
    if not proofs:
        return [head + b"\r\n" + BODY]
    return [head + f"DPoP: {proof}\r\n\r\n".encode() + BODY for proof in proofs]


class Stats:
    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.static = len(requests) == 1
        self.position = 0
        self.exhausted = 0
        self.latencies: list[float] = []
        self.non_2xx = 0
        self.read_errors = 0
        self.bytes = 0

    def next_request(self) -> bytes:
        if self.static:
            return self.requests[0]
        if self.position >= len(self.requests):
            self.exhausted += 1
            self.position = 0
        self.position += 1
        return self.requests[self.position - 1]


async def _connection(host: str, port: int, stats: Stats, deadline: float) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(stats.next_request())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            stats.latencies.append(time.perf_counter() - started)
            stats.bytes += len(head) + len(body)
            if not 200 <= status < 300:
                stats.non_2xx += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        stats.read_errors += 1
    finally:
        writer.close()


async def run(url: str, connections: int, duration: float, proofs: list[str]) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stats = Stats(build_requests(parts.netloc, parts.path or "/", proofs))
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(_connection(host, port, stats, deadline) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies = sorted(stats.latencies)

    def percentile(p: float) -> int:
        if not latencies:
            return 0
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {
        "requests": len(latencies), "duration_us": round(elapsed * 1e6), "bytes": stats.bytes,
        "errors": {"connect": 0, "read": stats.read_errors, "write": 0,
                   "status": stats.non_2xx, "timeout": 0},
        "latency_us": {"p50": percentile(50), "p90": percentile(90), "p99": percentile(99),
                       "max": percentile(100),
                       "mean": sum(latencies) / len(latencies) * 1e6 if latencies else 0.0},
        "exhausted": stats.exhausted,
    }


def main() -> None:
    url, connections, duration, prefix = sys.argv[1:5]
    proofs = [] if prefix == "-" else Path(prefix + ".0").read_text().split()
    result = asyncio.run(run(url, int(connections), float(duration), proofs))
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
