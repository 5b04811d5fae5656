"""The resource side's benchmark: the inline resource check (an ES256 DPoP proof per API call,
the token's binding read from the store) against the plain pass-through, same run, same core.

    .venv/bin/python bench/resource.py [--duration 5] [--connections 32] [--rounds 1]

It sets everything up itself and tears it down (bench/harness.py's processes, each stopped by
its pid): a small aiohttp API (`GET /api/items` answers a fixed JSON), redis-server on a free
port (the store), the sidecar (`token-sidecar serve`, `[resource]` with `prefixes =
["/api/"]`, logging at the default "info"), bench/plain_proxy.py in front of the same API, and
`wrk` with bench/resource.lua. The sidecar's log (one JSON line per check) goes to its
output file, as bench/run.py's do. The server under test runs on one CPU, everything else on
another, as bench/run.py does.

The bindings: one access token per client key (`--keys`, 16), each bound to its key's
thumbprint, written into Redis the way the token side records them
(`sidecar.core.access_binding`), so every API call costs what it costs in production: parse
the proof, verify ES256, one `GET` of the binding and one `SET NX PX` of the `jti`. Every
request carries its own proof (`htm` GET, `htu` the sidecar's `resource.public_origin` +
path, `ath` of the token), signed just before the run. A run with a non-2xx answer or a socket
error is invalid (exit status 1). The plain pass-through gets the very same requests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import harness
import redis
import signer
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from harness import BenchError, Service

from sidecar.core.access_binding import ACCESS_BINDING, AccessBinding
from sidecar.core.jose.keys import thumbprint
from sidecar.ports import store_key

PATH = "/api/items"
_ECDSA = ec.ECDSA(hashes.SHA256())
_CHUNK = 5000
API_SCRIPT = """
from aiohttp import web
BODY = b'{"items":[1,2,3]}'
async def items(request):
    return web.Response(body=BODY, content_type="application/json")
app = web.Application()
app.router.add_get("/api/{tail:.*}", items)
web.run_app(app, host="127.0.0.1", port=PORT, access_log=None, print=None)
"""


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": signer.b64url(numbers.x.to_bytes(32, "big")),
            "y": signer.b64url(numbers.y.to_bytes(32, "big"))}


def _sign_range(scalars: Sequence[int], tokens: Sequence[str], htu: str, *, tag: str,
                start: int, count: int) -> list[str]:
    """`<token> <proof>` lines, the proofs for GET htu with the token's ath (RFC 9449 §4.2)."""
    keys = [ec.derive_private_key(s, ec.SECP256R1()) for s in scalars]
    headers = [signer.b64url(json.dumps({"typ": "dpop+jwt", "alg": "ES256",
                                         "jwk": public_jwk(k)}, separators=(",", ":")).encode())
               for k in keys]
    aths = [signer.b64url(hashlib.sha256(t.encode()).digest()) for t in tokens]
    iat = int(time.time())
    lines = []
    for i in range(start, start + count):
        k = i % len(keys)
        claims = {"jti": f"{tag}{i:012x}", "htm": "GET", "htu": htu, "iat": iat, "ath": aths[k]}
        payload = signer.b64url(json.dumps(claims, separators=(",", ":")).encode())
        data = f"{headers[k]}.{payload}"
        r, s = decode_dss_signature(keys[k].sign(data.encode("ascii"), _ECDSA))
        signature = signer.b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        lines.append(f"{tokens[k]} {data}.{signature}")
    return lines


def sign_calls(scalars: Sequence[int], tokens: Sequence[str], htu: str, count: int, *,
               prefix: Path) -> None:
    """`count` calls into `<prefix>.0`, the file of wrk's one thread."""
    tag = secrets.token_hex(10)
    ranges = [(start, min(_CHUNK, count - start)) for start in range(0, count, _CHUNK)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        futures = [pool.submit(_sign_range, list(scalars), list(tokens), htu, tag=tag,
                               start=start, count=n) for start, n in ranges]
        lines = [line for future in futures for line in future.result()]
    prefix.with_name(f"{prefix.name}.0").write_text("\n".join(lines) + "\n")


def record_bindings(redis_port: int, key_prefix: str, scalars: Sequence[int]) -> list[str]:
    """One token per key, bound to the key's thumbprint, as the token side records it."""
    client = redis.Redis(host="127.0.0.1", port=redis_port)
    tokens = []
    for scalar in scalars:
        token = secrets.token_urlsafe(32)
        jkt = thumbprint(public_jwk(ec.derive_private_key(scalar, ec.SECP256R1())))
        binding = AccessBinding(jkt=jkt, client_id="bench-client", scope="read",
                                exp=int(time.time()) + 3600)
        client.set(store_key(key_prefix, ACCESS_BINDING, token), binding.encode(), ex=3600)
        tokens.append(token)
    client.close()
    return tokens


def sidecar_config(workdir: Path, port: int, api: str, redis_port: int, key_prefix: str) -> Path:
    origin = f"http://127.0.0.1:{port}"
    path = workdir / "sidecar.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{harness.free_port()}"
public_token_endpoint = "{origin}/token"
[upstream]
url = "{api}"
[store]
url = "redis://127.0.0.1:{redis_port}?socket_timeout=0.5"
key_prefix = "{key_prefix}"
[resource]
enabled = true
public_origin = "{origin}"
prefixes = ["/api/"]
upstream_url = "{api}"
""")
    return path


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    redis_binary: str
    server_cpu: int
    load_cpu: int | None
    services: list[Service] = field(default_factory=list)

    def start(self, service: Service) -> Service:
        self.services.append(service.start())
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def run_wrk(self, url: str, calls: Path) -> dict[str, object]:
        args = self.args
        argv = harness.pinned(self.load_cpu, [
            "wrk", "-t", "1", "-c", str(args.connections), "-d", f"{args.duration:g}s",
            "--timeout", "5s", "-s", str(harness.BENCH / "resource.lua"), url, "--",
            str(calls)])
        done = subprocess.run(argv, capture_output=True, text=True,
                              timeout=args.duration + 120, check=False, cwd=harness.ROOT)
        for line in done.stdout.splitlines():
            if line.startswith("BENCH_RESULT "):
                result: dict[str, object] = json.loads(line.removeprefix("BENCH_RESULT "))
                return result
        raise BenchError(f"wrk gave no result (exit {done.returncode}):\n"
                         f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def measure(self, name: str, url: str, calls: Path, server: Service, *,
                strict: bool) -> dict[str, float]:
        before = harness.process_tree_cpu_seconds(server.pid)
        result = self.run_wrk(url, calls)
        cpu = harness.process_tree_cpu_seconds(server.pid) - before
        errors: dict[str, int] = result["errors"]  # type: ignore[assignment]
        exhausted = int(result["exhausted"])  # type: ignore[call-overload]
        if any(errors.values()) or (strict and exhausted):
            raise BenchError(f"{name} run is INVALID: {result}\n{server.tail()}")
        seconds = int(result["duration_us"]) / 1e6  # type: ignore[call-overload]
        requests = int(result["requests"])  # type: ignore[call-overload]
        latency: dict[str, float] = result["latency_us"]  # type: ignore[assignment]
        return {"rps": round(requests / seconds, 1), "p50_ms": latency["p50"] / 1000,
                "p99_ms": latency["p99"] / 1000, "requests": requests,
                "cpu_us_per_request": round(cpu / requests * 1e6, 1)}

    def run(self) -> dict[str, object]:
        api = self.api()
        store = self.start(harness.redis_server(self.workdir, self.load_cpu,
                                                self.redis_binary))
        key_prefix = f"bench{secrets.token_hex(4)}:"
        scalars = signer.new_keys(self.args.keys)
        tokens = record_bindings(store.port, key_prefix, scalars)
        port, plain_port = harness.free_port(), harness.free_port()
        config = sidecar_config(self.workdir, port, api, store.port, key_prefix)
        sidecar = self.start(Service(
            "sidecar", [_sidecar_binary(), "serve", "--config", str(config)],
            port, self.workdir / "sidecar.out", self.server_cpu))
        plain = self.start(Service(
            "plain", [sys.executable, str(harness.BENCH / "plain_proxy.py"),
                      f"127.0.0.1:{plain_port}", api],
            plain_port, self.workdir / "plain.out", self.server_cpu))
        htu = f"http://127.0.0.1:{port}{PATH}"
        calls = self.workdir / "calls"
        rounds = []
        for _ in range(self.args.rounds):
            sign_calls(scalars, tokens, htu, 20000, prefix=calls)  # plain reads no proof
            plain_row = self.measure("plain", f"http://127.0.0.1:{plain_port}{PATH}", calls,
                                     plain, strict=False)
            count = int(plain_row["rps"] * self.args.duration * 1.3) \
                + 50 * self.args.connections
            sign_calls(scalars, tokens, htu, count, prefix=calls)
            resource_row = self.measure("resource", htu, calls, sidecar, strict=True)
            ratio = round(resource_row["rps"] / plain_row["rps"], 3)
            rounds.append({"plain": plain_row, "resource": resource_row,
                           "resource / plain": ratio})
            print(f"plain {plain_row['rps']:.0f} req/s, resource check "
                  f"{resource_row['rps']:.0f} req/s: ratio {ratio:.2f}", flush=True)
        return {"duration_seconds": self.args.duration, "connections": self.args.connections,
                "keys": self.args.keys, "rounds": rounds}

    def api(self) -> str:
        port = harness.free_port()
        script = self.workdir / "api.py"
        script.write_text(API_SCRIPT.replace("PORT", str(port)))
        self.start(Service("API", [sys.executable, str(script)], port,
                           self.workdir / "api.out", self.load_cpu))
        return f"http://127.0.0.1:{port}"


def _sidecar_binary() -> str:
    venv = harness.ROOT / ".venv" / "bin" / "token-sidecar"
    found = str(venv) if venv.exists() else shutil.which("token-sidecar")
    if not found:
        raise BenchError("token-sidecar is not installed (pip install -e . in .venv)")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keys", type=int, default=16)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed (apt-get install {tool})", file=sys.stderr)
            return 2
    redis_binary = harness.find_redis()
    if redis_binary is None:
        print("redis-server is needed (apt-get install redis-server)", file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    bench = Bench(args, Path(tempfile.mkdtemp(prefix="bench-resource-")), redis_binary,
                  cpus[0], cpus[1] if len(cpus) > 1 else None)
    try:
        rows = bench.run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        bench.stop()
        shutil.rmtree(bench.workdir, ignore_errors=True)
    print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
