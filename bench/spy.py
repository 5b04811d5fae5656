"""py-spy for bench/run.py --profile: record the sidecar during a run, then aggregate.

`py-spy record --format raw --function` writes collapsed stacks ("f1 (file:line);f2 ... N",
one line per distinct stack): the file can be loaded as is into speedscope or fed to
flamegraph.pl. From it this module prints
- own time: the innermost frame of every sample, by function;
- inclusive time: every function on the sample's stack, once;
- where the time goes: each sample charged to the innermost frame that belongs to one of the
  request's stages (COMPONENTS), so the stages add up to 100%.
Idle samples (the event loop waiting in epoll) are not recorded by py-spy, so percentages are
shares of the CPU time the sidecar actually used.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# (stage, file suffix, function names or None for any). The innermost matching frame wins.
COMPONENTS: tuple[tuple[str, str, tuple[str, ...] | None], ...] = (
    # "sidecar/core/dpop" and ".../jose": a module or a package of that name.
    ("DPoP: ECDSA verify (cryptography)", "sidecar/core/dpop", ("verify",)),
    ("DPoP: ECDSA verify (cryptography)", "sidecar/core/jose/algorithms", ("verify",)),
    ("DPoP: rest of validate_proof", "sidecar/core/dpop", None),
    ("DPoP: JWK/base64 helpers", "sidecar/core/jose", None),
    ("store: redis-py", "redis/", None),
    ("store: adapter (memory/redis)", "sidecar/adapters/", None),
    ("store: store_key sha256", "sidecar/ports.py", None),
    ("metrics (prometheus_client + sidecar/http/metrics.py)", "prometheus_client/", None),
    ("metrics (prometheus_client + sidecar/http/metrics.py)", "sidecar/http/metrics.py", None),
    ("request id: uuid4", "uuid.py", None),
    ("answer: review_answer (JSON parse + token_type rewrite)", "sidecar/core/answer.py", None),
    ("decide: other steps (client auth, grant, cert, forward)", "sidecar/core/", None),
    ("read: read_token_request, form parse", "sidecar/http/parse.py", None),
    ("headers: upstream/response header filtering", "sidecar/http/headers.py", None),
    ("upstream: aiohttp client (request, response, connector)", "aiohttp/client", None),
    ("upstream: aiohttp client (request, response, connector)", "aiohttp/connector.py", None),
    ("upstream: send_token wrapper", "sidecar/http/proxy.py", None),
    ("error/JSON rendering", "sidecar/http/render.py", None),
    ("logging", "logging/", None),
    ("logging", "sidecar/logs.py", None),
    ("handler: sidecar/http/token.py itself", "sidecar/http/token.py", None),
    ("plain pass-through handler", "plain_proxy.py", None),
    ("aiohttp server (protocol, request, response, writer)", "aiohttp/", None),
    # uvloop is compiled: its loop, sockets and syscalls have no Python frame of their own, so
    # py-spy charges them to the outermost frame, asyncio/runners.py: this stage.
    ("event loop + socket transports (asyncio, or uvloop natively; incl. send/recv syscalls)",
     "asyncio/", None),
)


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: str

    @property
    def where(self) -> str:
        return f"{self.function} ({self.file}:{self.line})" if self.line else \
            f"{self.function} ({self.file})"


def parse_frame(text: str) -> Frame:
    match = _FRAME.match(text.strip())
    if match is None:
        return Frame(text.strip(), "", "")
    return Frame(match["function"], match["file"], match["line"] or "")


def read_stacks(path: Path) -> list[tuple[list[Frame], int]]:
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([parse_frame(f) for f in stack.split(";")], int(count)))
    return stacks


def _component(frames: list[Frame]) -> str:
    for frame in reversed(frames):
        for name, suffix, functions in COMPONENTS:
            if suffix in frame.file and (functions is None
                                         or frame.function.rsplit(".", 1)[-1] in functions):
                return name
    return "other"


@dataclass(frozen=True)
class Profile:
    samples: int
    own: list[tuple[str, int]]
    inclusive: list[tuple[str, int]]
    components: list[tuple[str, int]]
    sidecar: list[tuple[str, int]]  # inclusive, functions of the sidecar package only

    def as_json(self, top: int = 25) -> dict[str, object]:
        def rows(items: list[tuple[str, int]]) -> list[dict[str, object]]:
            return [{"where": w, "samples": n, "percent": round(100 * n / self.samples, 1)}
                    for w, n in items[:top]]
        return {"samples": self.samples, "own": rows(self.own),
                "inclusive": rows(self.inclusive), "stages": rows(self.components),
                "sidecar_inclusive": rows(self.sidecar)}


def aggregate(path: Path) -> Profile:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    components: Counter[str] = Counter()
    sidecar: Counter[str] = Counter()
    samples = 0
    for frames, count in read_stacks(path):
        samples += count
        own[frames[-1].where] += count
        for where in {f.where for f in frames}:
            inclusive[where] += count
        components[_component(frames)] += count
        for where in {f.where for f in frames if f.file.startswith("sidecar/")}:
            sidecar[where] += count
    # Frames on (nearly) every stack (main, the event loop) say nothing: left out.
    return Profile(samples, own.most_common(), inclusive.most_common(),
                   components.most_common(),
                   [(w, n) for w, n in sidecar.most_common() if n < 0.99 * samples])


def find_py_spy() -> str | None:
    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
    return str(venv) if venv.exists() else shutil.which("py-spy")


def start_recording(binary: str, pid: int, seconds: float, output: Path, *, cpu: int | None,
                    rate: int = 200) -> subprocess.Popen[bytes]:
    argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
            "--rate", str(rate), "--format", "raw", "--function", "--output", str(output)]
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
