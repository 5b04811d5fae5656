"""Processes for bench/run.py: the upstream (nginx or aiohttp), redis-server, a 3-master Redis
Cluster (tests/support/redis_cluster.py's LocalCluster), the servers under test, the load
generator, and CPU accounting from /proc. Every process is started pinned to one CPU
(`taskset -c N`), tracked by its pid, and stopped by that pid only.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.redis_cluster import LocalCluster

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
UPSTREAM_BODY = ('{"access_token":"bench-access-token-0123456789abcdef","token_type":"Bearer",'
              '"expires_in":3600,"scope":"read"}')
_READY_TIMEOUT_SECONDS = 15.0
# The fixed-rate runs: every connection waits this long after an answer (whole ms: wrk's
# delay() takes milliseconds), so the rate is set by the number of connections.
PACE_MS = 10


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env() -> dict[str, str]:
    """This environment minus TOKEN_SIDECAR_* (they would override the generated config)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_SIDECAR_")}


def pinned(cpu: int | str | None, argv: Sequence[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else list(argv)


class BenchError(Exception):
    """The benchmark cannot give a valid figure (a server failed, errors in the run...)."""


@dataclass
class Service:
    """One child process: started pinned, waited for on a TCP port, stopped by its pid."""

    name: str
    argv: list[str]
    port: int
    log: Path
    cpu: int | None = None
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Service:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                pinned(self.cpu, self.argv), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=dict(self.env or child_env()), cwd=ROOT)
        self._wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.process.returncode} at start:\n"
                                 f"{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BenchError(f"{self.name} did not listen on port {self.port} within "
                         f"{_READY_TIMEOUT_SECONDS:.0f} s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# ---------------------------------------------------------------------------------------
# The upstream and Redis.


def find_nginx() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_upstream(workdir: Path, cpu: int | None, binary: str) -> Service:
    """nginx answering POST /token with a fixed token JSON: as fast as an upstream gets."""
    port = free_port()
    root = workdir / "nginx"
    root.mkdir(exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    conf = f"""{user}
worker_processes 1;
daemon off;
master_process on;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = /token {{
            default_type application/json;
            add_header Cache-Control no-store always;
            return 200 '{UPSTREAM_BODY}';
        }}
    }}
}}
"""
    (root / "nginx.conf").write_text(conf)
    argv = [binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(root / "error.log")]
    return Service("nginx upstream", argv, port, workdir / "nginx.out", cpu).start()


def aiohttp_upstream(workdir: Path, cpu: int | None) -> Service:
    port = free_port()
    script = workdir / "upstream.py"
    script.write_text(f"""
from aiohttp import web
BODY = {UPSTREAM_BODY!r}.encode()
async def token(request):
    await request.read()
    return web.Response(body=BODY, content_type="application/json",
                        headers={{"Cache-Control": "no-store"}})
app = web.Application()
app.router.add_post("/token", token)
web.run_app(app, host="127.0.0.1", port={port}, access_log=None, print=None)
""")
    return Service("aiohttp upstream", [sys.executable, str(script)], port,
                   workdir / "upstream.out", cpu).start()


def find_redis() -> str | None:
    for candidate in (os.environ.get("REDIS_SERVER"), shutil.which("redis-server"),
                      "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_server(workdir: Path, cpu: int | None, binary: str) -> Service:
    port = free_port()
    directory = workdir / "redis"
    directory.mkdir(exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
            "--protected-mode", "no", "--loglevel", "warning"]
    return Service("redis-server", argv, port, workdir / "redis.out", cpu).start()


def find_redis_cli(server_binary: str) -> str | None:
    """redis-cli next to redis-server (LocalCluster looks for it there), else on PATH."""
    for candidate in (str(Path(server_binary).with_name("redis-cli")), shutil.which("redis-cli")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def redis_cluster(workdir: Path, cpu: int | None, binary: str, cli: str) -> LocalCluster:
    """A started 3-master Redis Cluster (no replicas, no persistence), every node pinned to
    `cpu`: the test suite's LocalCluster, imported from tests/support, given a `redis-server`
    that is a wrapper `exec taskset -c <cpu> <binary> "$@"` (the node keeps the wrapper's pid,
    so LocalCluster still stops it by its pid), with `redis-cli` beside it (where LocalCluster
    looks for it). Stop it with `.stop()`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.support.redis_cluster import LocalCluster  # noqa: PLC0415
    from tests.support.redis_server import StartError  # noqa: PLC0415

    directory = workdir / "redis-cluster-bin"
    directory.mkdir(exist_ok=True)
    server = directory / "redis-server"
    if cpu is None:
        server.symlink_to(binary)
    else:
        server.write_text(f'#!/bin/sh\nexec taskset -c {cpu} {shlex.quote(binary)} "$@"\n')
        server.chmod(0o755)
    (directory / "redis-cli").symlink_to(cli)
    cluster = LocalCluster(masters=3, binary=str(server))
    try:
        cluster.start()  # stops the nodes it started when it fails
    except (StartError, OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"the Redis Cluster did not start: {exc}") from None
    return cluster


def unpinned_redis(cpu: int, binary: str, ports: Sequence[int]) -> list[str]:
    """The redis-server processes listening on `ports` (by their process title, "<binary>
    127.0.0.1:<port> [cluster]") that may run on another CPU than `cpu`, or are not found: a
    check that the pinning took."""
    found: dict[int, set[int]] = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith(binary + " "):
                continue
            port = next((p for p in ports if f":{p} " in title + " "), None)
            if port is not None:
                found[port] = os.sched_getaffinity(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return [f"port {p}: " + (f"CPUs {sorted(found[p])}" if p in found else "no process")
            for p in ports if found.get(p) != {cpu}]


# ---------------------------------------------------------------------------------------
# CPU accounting.


def cpu_times() -> dict[int, tuple[int, int, int]]:
    """Per CPU: (busy, total, steal) jiffies since boot, from /proc/stat."""
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        v = [int(x) for x in values[:8]]
        total = sum(v)
        idle = v[3] + v[4]
        result[int(name[3:])] = (total - idle, total, v[7])
    return result


def busy_percent(before: dict[int, tuple[int, int, int]],
                 after: dict[int, tuple[int, int, int]], cpu: int) -> float:
    busy = after[cpu][0] - before[cpu][0]
    total = after[cpu][1] - before[cpu][1]
    return 100.0 * busy / total if total else 0.0


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children (nginx's worker), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        this, parent = int(stat.parent.name), int(fields[1])
        if pid in (this, parent):
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# ---------------------------------------------------------------------------------------
# The load generator.


@dataclass(frozen=True)
class Pace:
    """A fixed request rate with wrk: `connections`, each pausing PACE_MS after every answer
    (bench/dpop.lua's delay()). One connection's cycle is the pause plus the answer's latency
    plus wrk's timer slack (about 2-3 ms together: a cycle of PACE_MS alone gave only 72-78%
    of the rate asked for), so the connections are sized by the measured cycle:
    rate x cycle_ms / 1000."""

    rate: float  # the rate asked for, req/s
    cycle_ms: float  # one connection's request-to-request time, as last measured

    @property
    def connections(self) -> int:
        return max(1, round(self.rate * self.cycle_ms / 1000))

    def calibrated(self, achieved_rps: float) -> Pace:
        """The same rate, with the cycle a run at this pace actually showed."""
        if achieved_rps <= 0:
            return self
        return Pace(self.rate, self.connections * 1000 / achieved_rps)

    @classmethod
    def first_guess(cls, rate: float) -> Pace:
        return cls(rate, PACE_MS + 2.5)


@dataclass(frozen=True)
class Load:
    tool: str  # "wrk" or "python"
    cpu: int | None
    connections: int
    threads: int

    def argv(self, url: str, seconds: float, proofs: Path | None,
             pace: Pace | None = None) -> list[str]:
        target = str(proofs) if proofs else "-"
        if self.tool == "wrk":
            connections, pause = (self.connections, []) if pace is None else \
                (pace.connections, [str(PACE_MS)])
            return pinned(self.cpu, [
                "wrk", "-t", str(self.threads), "-c", str(connections),
                "-d", f"{seconds:g}s", "--timeout", "5s", "-s", str(BENCH / "dpop.lua"),
                url, "--", target, *pause])
        if pace is not None:
            raise BenchError("a fixed request rate needs wrk (apt-get install wrk)")
        return pinned(self.cpu, [sys.executable, str(BENCH / "pyload.py"), url,
                                 str(self.connections), f"{seconds:g}", target])

    def run(self, url: str, seconds: float, proofs: Path | None,
            pace: Pace | None = None) -> dict[str, object]:
        completed = subprocess.run(self.argv(url, seconds, proofs, pace), capture_output=True,
                                   text=True, timeout=seconds + 120, check=False, cwd=ROOT)
        for line in completed.stdout.splitlines():
            if line.startswith("BENCH_RESULT "):
                result: dict[str, object] = json.loads(line.removeprefix("BENCH_RESULT "))
                return result
        raise BenchError(f"{self.tool} gave no result (exit {completed.returncode}):\n"
                         f"{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")
