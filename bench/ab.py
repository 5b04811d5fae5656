"""Before and after: the sidecar at another git revision against the working tree, in one run.

    .venv/bin/python bench/ab.py --base 617017c [--rounds 3] [--duration 5] [--dpop]

On a machine shared with other jobs req/s drifts between runs minutes apart, so this compares
the two revisions round by round, alternating (base, head, base, head, ...), each round also
measuring the plain pass-through: what is reported is each revision's ratio to the plain
pass-through of its own round, and the CPU time per request of both (the figure other
processes disturb least). Same pinning, upstream and load as bench/run.py (no DPoP, or with
--dpop ES256 on the memory store), at the default logging.level "info". The base revision
runs from `git archive` in a temporary directory, with the venv's packages.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import harness
import run as bench_run
import signer
from harness import Load, Service

# The venv's editable install puts a meta-path finder first; the base revision must win.
BOOT = ("import sys; sys.path.insert(0, {src!r}); "
         "sys.meta_path[:] = [f for f in sys.meta_path "
         "if not getattr(f, '__module__', '').startswith('__editable__')]; "
         "from sidecar.cli import main; sys.exit(main())")


def export(revision: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(harness.ROOT), "archive", revision, "sidecar"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def start(src: Path | None, workdir: Path, name: str, upstream: str, cpu: int | None) -> Service:
    port = harness.free_port()
    toml = workdir / f"{name}.toml"
    toml.write_text(f"""[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{harness.free_port()}"
public_token_endpoint = "http://127.0.0.1:{port}/token"

[upstream]
url = "{upstream}"

[dpop]
iat_max_age_seconds = 120

[logging]
level = "info"
format = "json"
""")
    python = str(harness.ROOT / ".venv" / "bin" / "python")
    argv = ([python, "-c", BOOT.format(src=str(src))] if src else [python, "-m", "sidecar.cli"])
    return Service(f"sidecar {name}", [*argv, "serve", "--config", str(toml)], port,
                   workdir / f"{name}.log", cpu).start()


def measure(service: Service, load: Load, seconds: float,
            proofs: Path | None) -> tuple[float, float]:
    """req/s and server CPU µs per request."""
    url = f"http://127.0.0.1:{service.port}/token"
    load.run(url, 1, None)  # warm-up, without proofs (they are single-use)
    before = harness.process_tree_cpu_seconds(service.pid)
    result = load.run(url, seconds, proofs)
    cpu = harness.process_tree_cpu_seconds(service.pid) - before
    errors = {k: v for k, v in result["errors"].items() if v}  # type: ignore[attr-defined]
    if errors or result["exhausted"]:
        raise harness.BenchError(f"{service.name}: invalid run {errors} {result['exhausted']}")
    requests = int(result["requests"])  # type: ignore[call-overload]
    elapsed = int(result["duration_us"]) / 1e6  # type: ignore[call-overload]
    return requests / elapsed, cpu / requests * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--dpop", action="store_true", help="DPoP ES256, memory store")
    args = parser.parse_args()
    server_cpu, load_cpu = bench_run.choose_cpus(argparse.Namespace(server_cpu=None,
                                                                    load_cpu=None))
    load = Load("wrk", load_cpu, 50, 1)
    keys = signer.new_keys(16)
    figures: dict[str, list[tuple[float, float]]] = {"plain": [], "base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="sidecar-ab-") as tmp:
        workdir = Path(tmp)
        base_src = export(args.base, Path(tempfile.mkdtemp(dir=tmp)))
        upstream = harness.nginx_upstream(workdir, load_cpu, harness.find_nginx() or "") \
            if harness.find_nginx() else harness.aiohttp_upstream(workdir, load_cpu)
        upstream_url = f"http://127.0.0.1:{upstream.port}"
        try:
            for number in range(args.rounds):
                plain_port = harness.free_port()
                plain = Service("plain", [sys.executable, str(harness.BENCH / "plain_proxy.py"),
                                          f"127.0.0.1:{plain_port}", upstream_url], plain_port,
                                workdir / "plain.log", server_cpu).start()
                try:
                    figures["plain"].append(measure(plain, load, args.duration, None))
                finally:
                    plain.stop()
                for name, src in (("base", base_src), ("head", None)):
                    service = start(src, workdir, name, upstream_url, server_cpu)
                    try:
                        proofs = None
                        if args.dpop:
                            url = f"http://127.0.0.1:{service.port}/token"
                            proofs = workdir / f"proofs-{name}"
                            signer.write_proof_files(
                                signer.sign_proofs(keys, url, 4000 * args.duration), proofs, 1)
                        figures[name].append(measure(service, load, args.duration, proofs))
                    finally:
                        service.stop()
                print(f"round {number + 1}: " + ", ".join(
                    f"{k} {v[-1][0]:.0f} req/s {v[-1][1]:.0f} µs/req" for k, v in figures.items()),
                    flush=True)
        finally:
            upstream.stop()
    for name in ("base", "head"):
        pairs = list(zip(figures[name], figures["plain"], strict=True))
        rps = [row[0] / plain[0] for row, plain in pairs]
        cpu = [plain[1] / row[1] for row, plain in pairs]
        print(f"{name} ({args.base if name == 'base' else 'working tree'}): req/s / plain "
              f"{statistics.median(rps):.2f} [{min(rps):.2f}-{max(rps):.2f}], CPU-time ratio "
              f"{statistics.median(cpu):.2f}, {statistics.median(r[1] for r in figures[name]):.0f}"
              " µs/req")
    return 0


if __name__ == "__main__":
    sys.exit(main())
