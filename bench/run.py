"""The sidecar's benchmark: requests per second and p50/p99 latency, as ratios to a plain aiohttp
pass-through measured in the same run on the same core.

    .venv/bin/python bench/run.py [--rounds 3] [--duration 10] [--connections 50] [--profile]

It sets up everything itself and tears it down: a fast upstream token endpoint (Debian's nginx
returning a fixed token JSON, else a minimal aiohttp app), redis-server on a free port, a
3-master Redis Cluster (tests/support/redis_cluster.py's LocalCluster), the servers under test
as real processes, and `wrk` with bench/dpop.lua (else the weaker Python generator
bench/pyload.py). The server under test is pinned to one CPU (`--server-cpu`, default the first
allowed CPU), the load generator, the upstream, Redis and the Cluster's nodes to another
(`--load-cpu`, the second), so every configuration is measured on the same core.

Configurations, same duration and connections (a 2 s warm-up before each), every sidecar at
the default logging.level "info" (one JSON access-log line per request, to a file), on uvloop
(the default server.event_loop), like the pass-through:
  direct       the upstream itself (a ceiling of the harness, not a target)
  plain        bench/plain_proxy.py: a plain aiohttp pass-through on uvloop (the baseline)
  nodpop       the sidecar, client_credentials with client_id, no DPoP
  dpop-memory  the sidecar, DPoP ES256, store memory://
  dpop-redis   the sidecar, DPoP ES256, store redis:// (unless --no-redis)
  dpop-redis-2w  the same with server.workers = 2 (the workers row)
  dpop-cluster the sidecar, DPoP ES256, store redis+cluster:// on 3 masters (unless
               --no-cluster or --no-redis)
  *-paced      plain, nodpop and dpop-redis at a fixed rate, half of the same round's plain
               saturation rate (wrk with bench/dpop.lua's delay(): each connection pauses
               harness.PACE_MS after each answer; wrk2 is not in Debian), with the
               connections sized by the cycle the warm-up measured (rate x cycle / 1000,
               harness.Pace) and re-sized when a run falls short: the latency row reports
               the rate achieved beside the rate asked for
with --warning-log also nodpop, dpop-memory and dpop-redis at logging.level "warning".
Each round runs every configuration once, in that order (rounds alternate the servers); the
tables give the median round and min-max over the rounds.

Every DPoP request carries its own proof (a jti is single-use), signed just before the run
(bench/signer.py) and read from a file by the load generator. A run with any non-2xx answer
or socket error is invalid: the bench stops with exit status 1. Besides the ratios, the
replay-check cost: each Redis row against DPoP with the memory store (req/s ratio, added
p50/p99 latency, added CPU time per request). Results go to stdout and to
bench/results/latest.json. With --profile, each Python server under test (plain pass-through,
sidecar) gets one more run with py-spy attached (never the reported one): its collapsed
stacks go to bench/results/profile-<config>.txt, and where its CPU time goes to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import math
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import harness
import signer
import spy
from harness import BenchError, Load, Pace, Service

RESULTS = harness.BENCH / "results"
BODY = b"grant_type=client_credentials&client_id=bench-client"
FORM = "application/x-www-form-urlencoded"
# Issue 15's targets, each a ratio of req/s within one round (same run, same core).
TARGETS = {"dpop-memory / plain": 0.50, "dpop-redis / plain": 0.42, "nodpop / plain": 0.75,
           "dpop-redis-2w / dpop-redis": 1.85}
LATENCY_TARGET_MS = 1.0  # p99 added to the pass-through's, at half its saturation rate
PACED_RATE_MIN = 0.95  # a paced run outside these shares of its rate is measured again
PACED_RATE_MAX = 1.05
LATENCY_ROWS = {"nodpop-paced": "no DPoP", "dpop-redis-paced": "DPoP ES256, Redis"}
# The replay-check cost: these rows against DPoP with the memory store, same load.
REPLAY_BASE = "dpop-memory"
REPLAY_ROWS = {"dpop-redis": "standalone Redis", "dpop-cluster": "Redis Cluster, 3 masters"}


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    dpop: bool = False
    store: str = ""  # "memory", "redis" or "cluster" for the sidecar, "" for the others
    log_level: str = "info"  # the default logging.level
    workers: int = 1
    paced: bool = False  # at half of the round's plain saturation rate, not saturated


CONFIGS = {c.key: c for c in (
    Config("direct", "upstream direct"),
    Config("plain", "plain aiohttp pass-through"),
    Config("nodpop", "sidecar, no DPoP", store="memory"),
    Config("dpop-memory", "sidecar, DPoP ES256, memory store", dpop=True, store="memory"),
    Config("dpop-redis", "sidecar, DPoP ES256, Redis store", dpop=True, store="redis"),
    Config("dpop-redis-2w", "sidecar, DPoP ES256, Redis, 2 workers", dpop=True,
           store="redis", workers=2),
    Config("dpop-cluster", "sidecar, DPoP ES256, Redis Cluster", dpop=True, store="cluster"),
    Config("plain-paced", "plain pass-through, half rate", paced=True),
    Config("nodpop-paced", "sidecar, no DPoP, half rate", store="memory", paced=True),
    Config("dpop-redis-paced", "sidecar, DPoP Redis, half rate", dpop=True, store="redis",
           paced=True),
    Config("nodpop-warning", "sidecar, no DPoP, log warning", store="memory",
           log_level="warning"),
    Config("dpop-memory-warning", "sidecar, DPoP memory, log warning", dpop=True,
           store="memory", log_level="warning"),
    Config("dpop-redis-warning", "sidecar, DPoP Redis, log warning", dpop=True, store="redis",
           log_level="warning"),
)}


@dataclass
class Row:
    config: str
    label: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    server_cpu_percent: float  # the server under test (process tree)
    server_cpu_us_per_request: float
    cpu_busy_percent: dict[str, float] = field(default_factory=dict)  # per pinned CPU
    # Busy time of the server's CPU that the server did not use: other processes competed
    # with it (another test run on the machine...). Over 10 points, the row is suspect.
    foreign_load_percent: float = 0.0
    disturbed: str = ""  # why the run did not measure the server alone, after the retries
    proofs_signed: int = 0
    target_rps: float = 0.0  # the fixed rate asked for (paced rows), else 0
    connections: int = 0  # wrk's connections (paced rows: sized for the rate, harness.Pace)


# ---------------------------------------------------------------------------------------
# The run.


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    load: Load
    server_cpu: int | None
    upstream: Service
    redis: Service | None
    cluster_url: str | None  # redis+cluster://h:p1,h:p2,h:p3 when the Cluster runs
    keys: list[int]
    py_spy: str | None
    rate_hint: float = 0.0
    half_rate: float = 0.0  # half of this round's plain saturation rate (the paced rows)
    workers_cpus: str | None = None  # where a 2-worker sidecar runs (taskset -c)
    workers_note: str = ""  # set when the 2 workers share one core (a projection, then)
    profiles: dict[str, dict[str, object]] = field(default_factory=dict)
    pace: Pace | None = None  # the current paced run's rate and connections

    def start_server(self, config: Config) -> Service | None:
        if config.key == "direct":
            return None
        port = harness.free_port()
        log = self.workdir / f"{config.key}.log"
        if config.key.startswith("plain"):
            argv = [sys.executable, str(harness.BENCH / "plain_proxy.py"), f"127.0.0.1:{port}",
                    self.upstream_url]
            return Service("plain pass-through", argv, port, log, self.server_cpu).start()
        toml = self.workdir / f"{config.key}.toml"
        toml.write_text(self.sidecar_toml(config, port))
        check = subprocess.run([_sidecar_binary(), "check-config", "--config", str(toml)],
                               capture_output=True, text=True, check=False,
                               env=harness.child_env())
        if check.returncode != 0:
            raise BenchError(f"generated sidecar config refused:\n{check.stderr}")
        argv = [_sidecar_binary(), "serve", "--config", str(toml)]
        cpu = self.workers_cpus if config.workers > 1 and self.workers_cpus else self.server_cpu
        return Service(f"sidecar ({config.key})", argv, port, log, cpu).start()

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.upstream.port}"

    def sidecar_toml(self, config: Config, port: int) -> str:
        if config.store == "redis":
            assert self.redis is not None
            # Query options win over the adapter's defaults (0.1 s); the store.* timeouts are
            # set too, for when the adapter reads them.
            store_url = (f"redis://127.0.0.1:{self.redis.port}/0"
                         "?socket_timeout=0.5&socket_connect_timeout=0.5")
        elif config.store == "cluster":
            assert self.cluster_url is not None
            # A Cluster URL takes no timeouts: store.*_timeout_seconds (0.5 s) below apply.
            store_url = self.cluster_url
        else:
            store_url = "memory://"
        # A fresh key prefix for every sidecar started (Redis keeps the keys of earlier runs
        # until their TTL), as long as the default one ("token-sidecar:"), without "{}".
        prefix = f"bench{secrets.token_hex(4)}:"
        return f"""# generated by bench/run.py
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{harness.free_port()}"
public_token_endpoint = "http://127.0.0.1:{port}/token"
workers = {config.workers}  # one process, but in the workers row: the ratios are per core

[upstream]
url = "{self.upstream_url}"

[store]
url = "{store_url}"
key_prefix = "{prefix}"
connect_timeout_seconds = 0.5
command_timeout_seconds = 0.5

[dpop]
iat_max_age_seconds = {self.iat_max_age}

[logging]
level = "{config.log_level}"
format = "json"
"""

    @property
    def iat_max_age(self) -> int:
        # Proofs are signed just before a run: the last one is used `duration` later.
        return max(60, math.ceil(self.args.duration) + 30)

    def measure(self, config: Config, *, profile: bool) -> Row:
        server = self.start_server(config)
        try:
            port = server.port if server else self.upstream.port
            url = f"http://127.0.0.1:{port}/token"
            self.smoke(config, url)
            self.pace = None
            if config.paced:
                if not self.half_rate:
                    raise BenchError(f"{config.key}: no plain saturation rate measured this round")
                self.pace = Pace.first_guess(self.half_rate)
            warm = self.load.run(url, self.args.warmup, None, self.pace)
            _check(config, warm, "warm-up")
            warm_rate = _rps(warm)
            if self.pace is not None:
                # Size the connections by the cycle the warm-up showed (harness.Pace).
                self.pace = self.pace.calibrated(warm_rate)
            row = self.run_with_proofs(config, url, server, warm_rate, profile=False)
            for _ in range(self.args.retries):
                reason = self.disturbance(row)
                if reason is None:
                    break
                print(f"    {row.rps:.0f} req/s, but {reason}: measuring again", flush=True)
                if self.pace is not None:
                    self.pace = self.pace.calibrated(row.rps)
                row = self.run_with_proofs(config, url, server, warm_rate, profile=False)
            row.disturbed = self.disturbance(row) or ""
            if profile and server is not None:
                # A separate pass, so that py-spy never perturbs the reported figures.
                print("    profiling (an extra run with py-spy attached) ...", flush=True)
                profiled = self.run_with_proofs(config, url, server, row.rps, profile=True)
                # µs per stage = share of the samples x the CPU time per request of the
                # reported run (the profiled run's is inflated by py-spy's pauses).
                self.profiles[config.key].update(
                    server_cpu_us_per_request=row.server_cpu_us_per_request,
                    profiled_run_cpu_us_per_request=profiled.server_cpu_us_per_request)
            return row
        finally:
            if server is not None:
                server.stop()

    def disturbance(self, row: Row) -> str | None:
        """Why the run does not measure the server alone, if it does not."""
        if row.config == "direct":
            return None
        if row.foreign_load_percent > 10:
            return f"other processes took {row.foreign_load_percent:.0f}% of the server's CPU"
        if row.target_rps:  # paced: not saturated on purpose, but at the rate asked
            got = row.rps / row.target_rps
            if got > PACED_RATE_MAX:
                return f"{100 * got:.0f}% of the rate asked for: more load than the row is for"
            if got >= PACED_RATE_MIN:
                return None
            if row.server_cpu_percent >= 90:
                return (f"{100 * got:.0f}% of the rate asked for, the server saturated: its "
                        "capacity is below the rate, the latency is queueing")
            return f"only {100 * got:.0f}% of the rate asked for"
        if self.load.tool == "wrk" and row.server_cpu_percent < 90:
            return (f"the server was not saturated ({row.server_cpu_percent:.0f}% CPU: the "
                    "load CPU was busy with something else)")
        return None

    def run_with_proofs(self, config: Config, url: str, server: Service | None,
                        rate: float, *, profile: bool) -> Row:
        for attempt in range(3):
            proofs = self.sign(config, url, rate, attempt)
            row = self.timed_run(config, url, server, proofs, profile=profile)
            if row is not None:
                return row
            print("    a load-generator thread ran out of proofs: measuring again with twice as "
                  "many", flush=True)
        raise BenchError(f"{config.key}: ran out of pre-signed proofs three times")

    def smoke(self, config: Config, url: str) -> None:
        proof = None
        if config.dpop:
            proof = signer.sign_proofs(self.keys[:1], url, 1, workers=1)[0]
        status, body = _post(url, proof)
        if status != 200:
            raise BenchError(f"{config.key}: smoke request got {status}: {body[:300]!r}")
        if config.dpop and json.loads(body).get("token_type") != "DPoP":
            raise BenchError(f"{config.key}: the DPoP smoke request was not DPoP-bound: "
                             f"{body[:300]!r}")

    def sign(self, config: Config, url: str, rate: float, attempt: int) -> Path | None:
        if not config.dpop:
            return None
        # No-DPoP traffic on the same server (the warm-up) is an upper bound of the DPoP rate.
        rate = max(rate, self.rate_hint if attempt else 0.0, 100.0)
        count = int(rate * self.args.duration * 1.3 * (2 ** attempt)) + 50 * self.load.connections
        started = time.perf_counter()
        proofs = signer.sign_proofs(self.keys, url, count)
        prefix = self.workdir / f"proofs-{config.key}"
        signer.write_proof_files(proofs, prefix, self.load.threads)
        print(f"    signed {count} proofs over {len(self.keys)} keys in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        return prefix

    def timed_run(self, config: Config, url: str, server: Service | None,
                  proofs: Path | None, *, profile: bool) -> Row | None:
        pid = server.pid if server else self.upstream.pid
        recording = None
        profile_file = self.args.output.parent / f"profile-{config.key}.txt"
        if profile and self.py_spy:
            recording = spy.start_recording(self.py_spy, pid, self.args.duration, profile_file,
                                            cpu=self.load.cpu, rate=self.args.profile_rate)
        cpu_before, proc_before = harness.cpu_times(), harness.process_tree_cpu_seconds(pid)
        pace = self.pace if config.paced else None
        result = self.load.run(url, self.args.duration, proofs, pace)
        cpu_after, proc_after = harness.cpu_times(), harness.process_tree_cpu_seconds(pid)
        if recording is not None:
            recording.wait(60)
        if server is not None and not server.alive():
            raise BenchError(f"{config.key}: the server died during the run:\n{server.tail()}")
        if int(result["exhausted"]) > 0:  # type: ignore[call-overload]
            return None
        _check(config, result, "profiling run" if profile else "run")
        cpus = {f"cpu{c}": round(harness.busy_percent(cpu_before, cpu_after, c), 1)
                for c in (self.server_cpu, self.load.cpu) if c is not None}
        row = _row(config, result, proc_after - proc_before, cpus)
        if server is not None and self.server_cpu is not None:
            row.foreign_load_percent = round(max(
                0.0, cpus[f"cpu{self.server_cpu}"] - row.server_cpu_percent), 1)
        if recording is not None:
            self.profiles[config.key] = spy.aggregate(profile_file).as_json()
        row.proofs_signed = _count_lines(proofs, self.load.threads) if proofs else 0
        row.target_rps = round(pace.rate, 1) if pace else 0.0
        row.connections = pace.connections if pace else self.load.connections
        if config.key in ("nodpop", "plain") and not profile:
            self.rate_hint = max(self.rate_hint, row.rps)
        if config.key == "plain" and not profile:
            self.half_rate = row.rps / 2
        return row


def _sidecar_binary() -> str:
    venv = harness.ROOT / ".venv" / "bin" / "token-sidecar"
    found = str(venv) if venv.exists() else shutil.which("token-sidecar")
    if not found:
        raise BenchError("token-sidecar is not installed (pip install -e . in .venv)")
    return found


def _post(url: str, proof: str | None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                            timeout=10)
    headers = {"Content-Type": FORM}
    if proof:
        headers["DPoP"] = proof
    try:
        connection.request("POST", parts.path, body=BODY, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def _rps(result: dict[str, object]) -> float:
    seconds = int(result["duration_us"]) / 1e6  # type: ignore[call-overload]
    return int(result["requests"]) / seconds if seconds else 0.0  # type: ignore[call-overload]


def _check(config: Config, result: dict[str, object], phase: str) -> None:
    errors: dict[str, int] = result["errors"]  # type: ignore[assignment]
    bad = {k: v for k, v in errors.items() if v}
    if bad or not result["requests"]:
        raise BenchError(
            f"{config.key} {phase} is INVALID: {result['requests']} requests, errors {bad} "
            "(status = non-2xx answers: an expired or replayed DPoP proof gets 400)")


def _row(config: Config, result: dict[str, object], server_cpu_seconds: float,
         cpus: dict[str, float]) -> Row:
    latency: dict[str, float] = result["latency_us"]  # type: ignore[assignment]
    seconds = int(result["duration_us"]) / 1e6  # type: ignore[call-overload]
    requests = int(result["requests"])  # type: ignore[call-overload]
    errors: dict[str, int] = result["errors"]  # type: ignore[assignment]
    return Row(
        config=config.key, label=config.label, requests=requests, seconds=round(seconds, 2),
        rps=round(requests / seconds, 1), p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000, p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000, non_2xx=errors["status"],
        socket_errors=sum(v for k, v in errors.items() if k != "status"),
        server_cpu_percent=round(100 * server_cpu_seconds / seconds, 1),
        server_cpu_us_per_request=round(server_cpu_seconds / requests * 1e6, 1),
        cpu_busy_percent=cpus,
    )


def _count_lines(prefix: Path, parts: int) -> int:
    return sum(len(prefix.with_name(f"{prefix.name}.{i}").read_text().splitlines())
               for i in range(parts))


# ---------------------------------------------------------------------------------------
# Summary.


def ratios(rows: dict[str, Row]) -> dict[str, dict[str, float]]:
    """Each sidecar row / plain pass-through; the DPoP rows / the sidecar without DPoP (the
    targets); the log-info rows / the same row at warning. Two ratios each: of req/s (the
    target's definition), and of CPU time per request inverted (base µs / row µs), which
    other processes on the machine disturb much less than req/s."""
    pairs = [(key, "plain") for key in rows
             if key not in ("direct", "plain") and not CONFIGS[key].paced]
    pairs += [("dpop-redis-2w", "dpop-redis"), ("dpop-memory", "nodpop"),
              ("dpop-redis", "nodpop"), ("dpop-cluster", "nodpop"),
              ("nodpop", "nodpop-warning"), ("dpop-memory", "dpop-memory-warning"),
              ("dpop-redis", "dpop-redis-warning")]
    out: dict[str, dict[str, float]] = {}
    for key, base in pairs:
        if key in rows and base in rows:
            row, ref = rows[key], rows[base]
            out[f"{key} / {base}"] = {
                "rps": round(row.rps / ref.rps, 3),
                "cpu": round(ref.server_cpu_us_per_request / row.server_cpu_us_per_request, 3)}
    return out


def median_rows(rounds: list[dict[str, Row]]) -> dict[str, Row]:
    """Per configuration, the round with the median req/s (so p50/p99 stay one run's)."""
    out = {}
    for key in rounds[0]:
        runs = sorted((r[key] for r in rounds if key in r), key=lambda row: row.rps)
        out[key] = runs[(len(runs) - 1) // 2]
    return out


def median_ratios(rounds: list[dict[str, Row]]) -> dict[str, dict[str, float]]:
    per_round = [ratios(r) for r in rounds]
    out = {}
    for name in per_round[0]:
        rps = [r[name]["rps"] for r in per_round if name in r]
        cpu = [r[name]["cpu"] for r in per_round if name in r]
        out[name] = {"median": round(statistics.median(rps), 3), "min": min(rps),
                     "max": max(rps), "cpu_median": round(statistics.median(cpu), 3)}
    return out


def replay_costs(rounds: list[dict[str, Row]]) -> dict[str, dict[str, object]]:
    """What the replay check costs on Redis: each REPLAY_ROWS row against DPoP with the memory
    store, paired within a round (same load, minutes apart at most), the median over rounds:
    req/s ratio (with min-max), added p50 and p99 latency (ms), added CPU time per request
    (µs)."""
    out: dict[str, dict[str, object]] = {}
    for key, store in REPLAY_ROWS.items():
        pairs = [(r[key], r[REPLAY_BASE]) for r in rounds if key in r and REPLAY_BASE in r]
        if not pairs:
            continue
        rps = [row.rps / base.rps for row, base in pairs]
        out[f"{key} / {REPLAY_BASE}"] = {
            "store": store, "rounds": len(pairs),
            "rps_ratio": round(statistics.median(rps), 3),
            "rps_ratio_min": round(min(rps), 3), "rps_ratio_max": round(max(rps), 3),
            "added_p50_ms": round(statistics.median(r.p50_ms - b.p50_ms for r, b in pairs), 3),
            "added_p99_ms": round(statistics.median(r.p99_ms - b.p99_ms for r, b in pairs), 3),
            "added_cpu_us_per_request": round(statistics.median(
                r.server_cpu_us_per_request - b.server_cpu_us_per_request for r, b in pairs), 1),
        }
    return out


def print_replay_costs(costs: dict[str, dict[str, object]], rows: dict[str, Row]) -> None:
    base = rows.get(REPLAY_BASE)
    if not costs or base is None:
        return
    several = max(int(c["rounds"]) for c in costs.values()) > 1  # type: ignore[call-overload]
    print(f"\nreplay-check cost: each store against the memory store"
          f"{' (per round, median of the rounds)' if several else ''}; memory: "
          f"{base.rps:.0f} req/s, p50 {base.p50_ms:.2f} ms, p99 {base.p99_ms:.2f} ms, "
          f"{base.server_cpu_us_per_request:.0f} µs/req")
    print(f"  {'store':<26} {'req/s ratio':>11}{'  [min-max]' if several else ''} "
          f"{'+p50 ms':>8} {'+p99 ms':>8} {'+CPU µs/req':>12}")
    for cost in costs.values():
        spread = (f"  [{cost['rps_ratio_min']:.2f}-{cost['rps_ratio_max']:.2f}]"
                  if several else "")
        print(f"  {cost['store']:<26} {cost['rps_ratio']:>11.2f}{spread} "
              f"{cost['added_p50_ms']:>+8.2f} {cost['added_p99_ms']:>+8.2f} "
              f"{cost['added_cpu_us_per_request']:>+12.0f}")


def print_table(rows: dict[str, Row]) -> None:
    head = (f"{'configuration':<36} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
            f"{'srv CPU':>8} {'µs/req':>7}  CPUs busy")
    print(head)
    print("-" * len(head))
    suspect = []
    for row in rows.values():
        cpus = " ".join(f"{k}={v:.0f}%" for k, v in row.cpu_busy_percent.items())
        print(f"{row.label:<36} {row.rps:>8.0f} {row.p50_ms:>8.2f} {row.p99_ms:>8.2f} "
              f"{row.non_2xx:>8} {row.server_cpu_percent:>7.0f}% "
              f"{row.server_cpu_us_per_request:>7.0f}  {cpus}")
        if row.disturbed:
            suspect.append(f"{row.label}: {row.disturbed}")
    print("srv CPU: the server under test's own CPU use (100% = one core saturated); µs/req: "
          "its CPU time per request")
    for line in suspect:
        print(f"WARNING: {line}")
    if suspect:
        print("  req/s of those rows is low; the CPU-time ratios below are less affected. Run "
              "again on a quiet machine, or with --rounds 3 (the median round is reported).")


def print_ratios(summary: dict[str, dict[str, float]], rounds: int) -> None:
    """Every ratio (extra information; the targets are in print_targets)."""
    several = rounds > 1
    print(f"\nall ratios{f' (median of {rounds} rounds)' if several else ''}"
          f"{'':<{18 if several else 30}}req/s{'  [min-max]' if several else ''}"
          "   CPU time (cross-check)")
    for name, value in summary.items():
        spread = f"  [{value['min']:.2f}-{value['max']:.2f}]" if several else ""
        print(f"  {name:<36} {value['median']:5.2f}{spread}   {value['cpu_median']:5.2f}")


def added_latency(rounds: list[dict[str, Row]]) -> dict[str, dict[str, float]]:
    """p99 (and p50) of each paced sidecar row minus the paced pass-through's, per round (the
    same rate: half of that round's plain saturation rate); median and min-max."""
    out: dict[str, dict[str, float]] = {}
    for key in LATENCY_ROWS:
        pairs = [(r[key], r["plain-paced"]) for r in rounds if key in r and "plain-paced" in r]
        if not pairs:
            continue
        p99 = [row.p99_ms - base.p99_ms for row, base in pairs]
        out[key] = {
            "added_p99_ms": round(statistics.median(p99), 3), "min": round(min(p99), 3),
            "max": round(max(p99), 3),
            "added_p50_ms": round(statistics.median(r.p50_ms - b.p50_ms for r, b in pairs), 3),
            "rate": round(statistics.median(r.rps for r, _ in pairs)),
            "target_rate": round(statistics.median(r.target_rps for r, _ in pairs)),
            "plain_p99_ms": round(statistics.median(b.p99_ms for _, b in pairs), 3)}
    return out


def print_targets(summary: dict[str, dict[str, float]], latency: dict[str, dict[str, float]],
                  rounds: int, workers_note: str) -> bool:
    """Issue 15's table; True when every target is met (by the medians)."""
    met = True
    print(f"\nthe targets (ratio to the plain aiohttp pass-through on uvloop, same run; "
          f"median of {rounds} round{'s' if rounds > 1 else ''} [min-max]; CPU-time "
          "cross-check)")
    print(f"  {'case':<52} {'median':>7} {'[min-max]':>13} {'CPU':>6}  target")
    rows = [("DPoP ES256, memory store", "dpop-memory / plain"),
            ("DPoP ES256, Redis", "dpop-redis / plain"), ("no DPoP", "nodpop / plain")]
    for label, name in rows:
        if name in summary:
            met &= _print_target(label, summary[name], TARGETS[name], "x")
    for key, value in latency.items():
        label = (f"p99 added latency, {LATENCY_ROWS[key]} (ms; {value['rate']:.0f} of "
                 f"{value['target_rate']:.0f} req/s)")
        ok = value["added_p99_ms"] <= LATENCY_TARGET_MS
        met &= ok
        print(f"  {label:<52} {value['added_p99_ms']:>+7.2f} "
              f"{'[' + format(value['min'], '+.2f') + '-' + format(value['max'], '+.2f') + ']':>13}"
              f" {'':>6}  <= {LATENCY_TARGET_MS:g} ms: {'MET' if ok else 'NOT MET'}")
    name = "dpop-redis-2w / dpop-redis"
    if name in summary:
        if workers_note:
            _print_projected_workers(summary[name], TARGETS[name], workers_note)
        else:
            met &= _print_target("2 workers / 1 worker, DPoP on Redis", summary[name],
                                 TARGETS[name], "x")
    return met


def _print_target(label: str, value: dict[str, float], target: float, unit: str) -> bool:
    ok = value["median"] >= target
    # Two decimals, or three where two would round a miss up to the target (0.746 -> 0.75).
    digits = 2 if ok or round(value["median"], 2) < target else 3
    spread = f"[{value['min']:.2f}-{value['max']:.2f}]"
    cpu = f"{value['cpu_median']:.2f}"
    print(f"  {label:<52} {value['median']:>7.{digits}f} {spread:>13} {cpu:>6}  "
          f">= {target}{unit}: {'MET' if ok else 'NOT MET'}")
    return ok


def _print_projected_workers(value: dict[str, float], target: float, note: str) -> None:
    """Both workers on the server's one core: the req/s ratio (about 0.9) is what a second
    process costs on the same core, not scaling, and no verdict is given. The projection
    (2 x the CPU-time ratio) is printed beside it, as a projection: it assumes a free core
    for the second worker and a load generator, upstream and Redis that keep up, none of
    which a 2-core machine has. `--check-targets` leaves the row out."""
    spread = f"[{value['min']:.2f}-{value['max']:.2f}]"
    print(f"  {'2 workers / 1 worker, DPoP on Redis (ONE core)':<52} {value['median']:>7.2f} "
          f"{spread:>13} {value['cpu_median']:>6.2f}  NOT MEASURED (>= {target}x needs a "
          f"core per worker); projected {2 * value['cpu_median']:.2f}x")
    print(f"    {note}")


# ---------------------------------------------------------------------------------------
# Set-up and main.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="repeat every configuration (3); the median round is reported")
    redis = parser.add_mutually_exclusive_group()
    redis.add_argument("--redis", dest="redis", action="store_true", default=None,
                       help="measure the Redis store (fail without redis-server); "
                            "default: when redis-server is installed")
    redis.add_argument("--no-redis", dest="redis", action="store_false",
                       help="no Redis at all: neither the Redis row nor, unless --cluster, "
                            "the Cluster row")
    cluster = parser.add_mutually_exclusive_group()
    cluster.add_argument("--cluster", dest="cluster", action="store_true", default=None,
                         help="measure the store on a 3-master Redis Cluster (fail without "
                              "redis-server and redis-cli); default: when both are installed")
    cluster.add_argument("--no-cluster", dest="cluster", action="store_false",
                         help="skip the Redis Cluster row")
    parser.add_argument("--retries", type=int, default=2,
                        help="measure a run again when other processes disturbed it (2)")
    parser.add_argument("--profile", action="store_true",
                        help="after each measured run of a Python server (plain, sidecar), "
                             "an extra run with py-spy attached; summary to stdout")
    parser.add_argument("--profile-rate", type=int, default=200,
                        help="py-spy samples a second with --profile (200; 1000 for a finer "
                             "picture of a short run)")
    parser.add_argument("--warning-log", action="store_true",
                        help="also measure no-DPoP, DPoP memory and DPoP Redis at "
                             "logging.level warning (the others run at the default, info)")
    parser.add_argument("--only", default="",
                        help=f"comma-separated subset of {', '.join(CONFIGS)}")
    parser.add_argument("--keys", type=int, default=16, help="DPoP client keys (16)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--upstream", choices=("auto", "nginx", "aiohttp"), default="auto")
    parser.add_argument("--server-cpu", type=int, default=None)
    parser.add_argument("--load-cpu", type=int, default=None)
    parser.add_argument("--check-targets", action="store_true",
                        help="exit with status 3 when a target ratio is not met")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json",
                        help="the JSON results; profiles go beside it (bench/results/)")
    return parser.parse_args(argv)


def choose_configs(args: argparse.Namespace, redis_binary: str | None,
                   redis_cli: str | None) -> list[Config]:
    if args.only:
        keys = [k.strip() for k in args.only.split(",") if k.strip()]
        unknown = [k for k in keys if k not in CONFIGS]
        if unknown:
            raise BenchError(f"unknown configurations {unknown}; known: {', '.join(CONFIGS)}")
    else:
        keys = ["direct", "plain", "nodpop", "dpop-memory", "dpop-redis", "dpop-redis-2w",
                "dpop-cluster", "plain-paced", "nodpop-paced", "dpop-redis-paced"]
        if args.warning_log:
            keys += ["nodpop-warning", "dpop-memory-warning", "dpop-redis-warning"]
    if args.cluster is False or (args.cluster is None and args.redis is False):
        keys = [k for k in keys if k != "dpop-cluster"]
    elif "dpop-cluster" in keys and (redis_binary is None or redis_cli is None):
        if args.cluster:
            raise BenchError("--cluster: redis-server and redis-cli are needed (apt-get install "
                             "redis-server, or set REDIS_SERVER)")
        print("note: redis-server or redis-cli not found, the Redis Cluster configuration is "
              "skipped")
        keys.remove("dpop-cluster")
    on_redis = [k for k in keys if CONFIGS[k].store == "redis"]
    if args.redis is False:
        keys = [k for k in keys if k not in on_redis]
    elif on_redis and redis_binary is None:
        if args.redis:
            raise BenchError("--redis: redis-server is not installed (apt-get install "
                             "redis-server, or set REDIS_SERVER)")
        print("note: redis-server not found, the Redis configurations are skipped")
        keys = [k for k in keys if k not in on_redis]
    if any(CONFIGS[k].paced for k in keys) and "plain" not in keys:
        keys.insert(0, "plain")  # the paced rows' rate is half of plain's saturation rate
    return [CONFIGS[k] for k in keys]


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None]:
    allowed = sorted(os.sched_getaffinity(0))
    if args.server_cpu is not None and args.load_cpu is not None:
        return args.server_cpu, args.load_cpu
    if len(allowed) < 2:
        print("WARNING: one CPU only: nothing is pinned, the load generator competes with "
              "the server under test")
        return None, None
    return allowed[0], allowed[1]


def choose_workers_cpus(server_cpu: int | None,
                        load_cpu: int | None) -> tuple[str | None, str]:
    """Two CPUs for the 2-worker sidecar, away from the load generator, when there are; else
    both workers on the server's one CPU and a note: req/s cannot scale there, and the CPU
    time per request (1 worker / 2 workers) x 2 is what a second core would give."""
    spare = [c for c in sorted(os.sched_getaffinity(0)) if c != load_cpu]
    if server_cpu is not None and len(spare) >= 2:
        return f"{spare[0]},{spare[1]}", ""
    return None, ("both workers share the server's one CPU (the machine has no third core "
                  "for them beside the load generator's): the req/s ratio is the cost of a "
                  "second process on that core (multiprocess metrics in mmap'ed files, two "
                  "loops' switching, Redis pipelines coalescing half as many commands each), "
                  "not scaling; the projection, 2 x the CPU-time ratio (µs/req with 1 "
                  "worker / with 2), assumes a core per worker and a load side that keeps "
                  "up. Measure the row with 4 or more cores.")


def choose_load(args: argparse.Namespace, cpu: int | None) -> Load:
    wrk = shutil.which("wrk")
    if args.loadgen == "wrk" and not wrk:
        raise BenchError("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    if args.loadgen == "python" or not wrk:
        print("WARNING: wrk not found (apt-get install wrk): using the Python load generator, "
              "which on one core may be slower than the server it measures")
        return Load("python", cpu, args.connections, 1)
    return Load("wrk", cpu, args.connections, 1 if cpu is not None else 2)


def _version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return ""
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr \
        else ""


def machine(load: Load, upstream: str, redis_binary: str | None) -> dict[str, object]:
    import aiohttp  # noqa: PLC0415 - versions only
    import cryptography  # noqa: PLC0415
    import redis  # noqa: PLC0415

    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {
        "cpu_model": model, "cpus_online": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "aiohttp": aiohttp.__version__,
        "cryptography": cryptography.__version__, "redis_py": redis.__version__,
        "load_generator": _version(["wrk", "--version"]) if load.tool == "wrk"
        else "python bench/pyload.py",
        "upstream": _version([upstream, "-v"]) if upstream != "aiohttp" else "aiohttp",
        "redis_server": _version([redis_binary, "--version"]) if redis_binary else "",
        "git_head": _version(["git", "-C", str(harness.ROOT), "rev-parse", "HEAD"]),
    }


@dataclass
class Services:
    upstream: Service
    kind: str  # nginx's path or "aiohttp"
    redis: Service | None = None
    cluster_url: str | None = None


@contextlib.contextmanager
def services(args: argparse.Namespace, workdir: Path, load_cpu: int | None,
             configs: list[Config]) -> Iterator[Services]:
    nginx = harness.find_nginx() if args.upstream in ("auto", "nginx") else None
    if args.upstream == "nginx" and nginx is None:
        raise BenchError("--upstream nginx: nginx is not installed (apt-get install nginx)")
    upstream = (harness.nginx_upstream(workdir, load_cpu, nginx) if nginx
                else harness.aiohttp_upstream(workdir, load_cpu))
    found = Services(upstream, nginx or "aiohttp")
    cluster = None
    try:
        redis_binary = harness.find_redis()
        if redis_binary and any(c.store == "redis" for c in configs):
            found.redis = harness.redis_server(workdir, load_cpu, redis_binary)
        redis_cli = harness.find_redis_cli(redis_binary) if redis_binary else None
        if redis_binary and redis_cli and any(c.store == "cluster" for c in configs):
            cluster = harness.redis_cluster(workdir, load_cpu, redis_binary, redis_cli)
            if load_cpu is not None:
                wrong = harness.unpinned_redis(load_cpu, redis_binary,
                                               [n.port for n in cluster.nodes])
                if wrong:
                    raise BenchError(f"Redis Cluster nodes not pinned to CPU {load_cpu}: "
                                     f"{'; '.join(wrong)}")
            found.cluster_url = cluster.url
        yield found
    finally:
        if cluster is not None:
            cluster.stop()
        if found.redis is not None:
            found.redis.stop()
        upstream.stop()


def run(args: argparse.Namespace) -> int:
    server_cpu, load_cpu = choose_cpus(args)
    redis_binary = harness.find_redis()
    configs = choose_configs(args, redis_binary,
                             harness.find_redis_cli(redis_binary) if redis_binary else None)
    load = choose_load(args, load_cpu)
    py_spy = spy.find_py_spy() if args.profile else None
    if args.profile and not py_spy:
        raise BenchError("--profile: py-spy not found (.venv/bin/pip install py-spy)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.UTC)
    with tempfile.TemporaryDirectory(prefix="sidecar-bench-") as tmp, \
            services(args, Path(tmp), load_cpu, configs) as up:
        print(f"server under test on CPU {server_cpu}; {load.tool} ({load.threads} thread, "
              f"{load.connections} connections), upstream ({up.kind}), Redis and the Redis "
              f"Cluster's nodes on CPU {load_cpu}; {args.duration:g} s per run after "
              f"{args.warmup:g} s warm-up")
        bench = Bench(args, Path(tmp), load, server_cpu, up.upstream, up.redis, up.cluster_url,
                      signer.new_keys(args.keys), py_spy)
        bench.workers_cpus, bench.workers_note = choose_workers_cpus(server_cpu, load_cpu)
        rounds = [measure_round(bench, configs, n, args.rounds) for n in range(args.rounds)]
        info = machine(load, up.kind, redis_binary)
    return report(bench, rounds, info, started)


def measure_round(bench: Bench, configs: list[Config], number: int,
                  total: int) -> dict[str, Row]:
    rows = {}
    for config in configs:
        prefix = f"[round {number + 1}/{total}] " if total > 1 else ""
        print(f"{prefix}{config.label} ...", flush=True)
        # py-spy: every saturated single-process Python server, in the last round only.
        profile = (bench.args.profile and number == total - 1 and config.key != "direct"
                   and not config.paced and config.workers == 1)
        row = bench.measure(config, profile=profile)
        print(f"    {row.rps:.0f} req/s, p50 {row.p50_ms:.2f} ms, p99 {row.p99_ms:.2f} ms, "
              f"server CPU {row.server_cpu_percent:.0f}%", flush=True)
        rows[config.key] = row
    return rows


def report(bench: Bench, rounds: list[dict[str, Row]], info: dict[str, object],
           started: datetime.datetime) -> int:
    args = bench.args
    rows = median_rows(rounds)
    summary = median_ratios(rounds)
    costs = replay_costs(rounds)
    latency = added_latency(rounds)
    print()
    print_table(rows)
    print_ratios(summary, len(rounds))
    print_replay_costs(costs, rows)
    met = print_targets(summary, latency, len(rounds), bench.workers_note)
    for key, profile in bench.profiles.items():
        print(f"\npy-spy, {CONFIGS[key].label} ({args.output.parent / f'profile-{key}.txt'}):")
        print(_profile_text(profile))
    document = {
        "command": " ".join([".venv/bin/python", "bench/run.py", *sys.argv[1:]]),
        "started": started.isoformat(timespec="seconds"),
        "duration_seconds": args.duration, "connections": args.connections,
        "warmup_seconds": args.warmup, "dpop_keys": args.keys,
        "cpus": {"server": bench.server_cpu, "load_upstream_redis": bench.load.cpu},
        "redis_cluster": "3 masters, no replicas (tests/support/redis_cluster.py LocalCluster)"
        if bench.cluster_url else "",
        "machine": info, "targets": TARGETS,
        "results": {k: asdict(r) for k, r in rows.items()},
        "ratios": summary, "added_latency": latency, "workers_note": bench.workers_note,
        "replay_check_cost": costs,
        "rounds": [{k: asdict(r) for k, r in rnd.items()} for rnd in rounds],
        "profiles": bench.profiles,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten: {args.output}")
    return 3 if args.check_targets and not met else 0


def _profile_text(profile: dict[str, object]) -> str:
    us = float(profile.get("server_cpu_us_per_request", 0.0))  # type: ignore[arg-type]
    lines = [f"  {profile['samples']} samples (CPU time only); µs = share x {us:.0f} µs, the "
             "CPU time per request of the measured run"]

    def render(r: dict[str, object]) -> str:
        share = float(r["percent"])  # type: ignore[arg-type]
        return f"    {share:5.1f}% {share * us / 100:6.1f} µs  {r['where']}"

    for title, key, top in (("where the time goes (innermost stage, adds up to 100%)",
                             "stages", 30), ("top functions by own time", "own", 15),
                            ("sidecar functions by inclusive time", "sidecar_inclusive", 20)):
        lines.append(f"  {title}:")
        lines += [render(r) for r in profile.get(key, [])[:top]]  # type: ignore[attr-defined]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except BenchError as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
