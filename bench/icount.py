"""Instructions per request, under valgrind's callgrind: a cost figure that other jobs on the
machine do not disturb (req/s and CPU time do, a lot, on a shared 2-core VM).

    .venv/bin/python bench/icount.py --base 617017c [--dpop [--redis]] [--seconds 10]
    .venv/bin/python bench/icount.py --base b106f91,e8e622f,264a2ba   # each change in turn

Runs the plain pass-through, the sidecar at each `--base` revision (from `git archive`,
comma-separated: several give the change each commit made) and the working tree's sidecar,
one after the other, each under `valgrind --tool=callgrind` behind the same
upstream (nginx, else aiohttp), at the default logging.level "info". For each: a warm-up,
then the counters zeroed (`callgrind_control -z`), `--seconds` of wrk with 2 connections,
and the counters dumped: instructions executed by the server / requests answered. The
ratios to the plain pass-through are what the targets are about, in instructions rather
than time: they leave out cache misses and the kernel's share of socket work (callgrind
counts user space only), so they are a cross-check of bench/run.py's figures, not a
replacement.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import signer
from ab import BOOT, export

_START_TIMEOUT_SECONDS = 300.0  # Python starts ~50x slower under callgrind


def _toml(port: int, upstream: str, redis_port: int | None = None) -> str:
    store = "" if redis_port is None else f"""
[store]
url = "redis://127.0.0.1:{redis_port}"
connect_timeout_seconds = 0.5
command_timeout_seconds = 0.5
"""
    return f"""[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{harness.free_port()}"
public_token_endpoint = "http://127.0.0.1:{port}/token"

[upstream]
url = "{upstream}"

[dpop]
iat_max_age_seconds = 1200

[logging]
level = "info"
format = "json"
{store}"""


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise harness.BenchError(f"exited with {process.returncode} at start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise harness.BenchError(f"nothing listened on {port}")


def _wrk(url: str, seconds: int, proofs: Path | None) -> int:
    result = harness.Load("wrk", None, 2, 1).run(url, seconds, proofs)
    bad = {k: v for k, v in result["errors"].items() if v}  # type: ignore[attr-defined]
    if bad or result["exhausted"]:
        raise harness.BenchError(f"invalid run: {bad}, exhausted {result['exhausted']}")
    return int(result["requests"])  # type: ignore[call-overload]


def count(name: str, argv: list[str], port: int, workdir: Path, *, seconds: int,
          keys: list[int] | None) -> float:
    """Instructions per request of the server `argv` starts."""
    out = workdir / f"callgrind-{name}"
    with (workdir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", *argv],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=harness.child_env(), cwd=harness.ROOT)
    try:
        _wait(port, process)
        url = f"http://127.0.0.1:{port}/token"
        proofs = None
        if keys is not None:
            proofs = workdir / f"proofs-{name}"
            signer.write_proof_files(signer.sign_proofs(keys, url, 400 * seconds), proofs, 1)
        _wrk(url, 3, None)  # warm-up (no proofs: they are single-use)
        subprocess.run(["callgrind_control", "-z", str(process.pid)], check=True,
                       capture_output=True)
        requests = _wrk(url, seconds, proofs)
        subprocess.run(["callgrind_control", "-d", str(process.pid)], check=True,
                       capture_output=True)
        dump = Path(f"{out}.{process.pid}.1")
        for _ in range(100):
            if dump.exists() and "summary:" in dump.read_text(errors="replace"):
                break
            time.sleep(0.2)
        summary = next(line for line in dump.read_text(errors="replace").splitlines()
                       if line.startswith("summary:"))
        return int(summary.split()[1]) / requests
    finally:
        process.terminate()
        process.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a revision, or several: REV,REV,...")
    parser.add_argument("--dpop", action="store_true", help="DPoP ES256, memory store")
    parser.add_argument("--redis", action="store_true",
                        help="with --dpop: the Redis store (a redis-server on a free port)")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    keys = signer.new_keys(4) if args.dpop else None
    python = str(harness.ROOT / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="sidecar-icount-") as tmp:
        workdir = Path(tmp)
        bases = [(rev, export(rev, Path(tempfile.mkdtemp(dir=tmp))))
                 for rev in args.base.split(",")]
        nginx = harness.find_nginx()
        upstream = harness.nginx_upstream(workdir, None, nginx) if nginx \
            else harness.aiohttp_upstream(workdir, None)
        redis = None
        if args.redis:
            binary = harness.find_redis()
            if binary is None:
                raise harness.BenchError("--redis: redis-server not found")
            redis = harness.redis_server(workdir, None, binary)
        upstream_url = f"http://127.0.0.1:{upstream.port}"
        try:
            port = harness.free_port()
            plain = count("plain", [sys.executable, str(harness.BENCH / "plain_proxy.py"),
                                    f"127.0.0.1:{port}", upstream_url], port, workdir,
                          seconds=args.seconds, keys=None)
            print(f"plain pass-through: {plain / 1e3:.0f} k instructions/request", flush=True)
            store = ", Redis" if redis else ""
            for number, (label, src) in enumerate([*bases, ("working tree", None)]):
                name = f"sidecar{number}"
                port = harness.free_port()
                toml = workdir / f"{name}.toml"
                toml.write_text(_toml(port, upstream_url, redis.port if redis else None))
                boot = ["-c", BOOT.format(src=str(src))] if src else ["-m", "sidecar.cli"]
                figure = count(name, [python, *boot, "serve", "--config", str(toml)], port,
                               workdir, seconds=args.seconds, keys=keys)
                print(f"sidecar {label}{', DPoP' + store if keys else ', no DPoP'}: "
                      f"{figure / 1e3:.0f} k instructions/request, plain / sidecar "
                      f"{plain / figure:.2f}", flush=True)
        finally:
            upstream.stop()
            if redis is not None:
                redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
