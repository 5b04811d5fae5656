"""Pure functions timed inside a sidecar under load, and again warm in the same process.

    PYTHONPATH=bench/intime INTIME_DIR=/tmp/it .venv/bin/python bench/run.py --rounds 1 \
        --only plain,dpop-memory --no-redis --output /tmp/it/run.json
    cat /tmp/it/intime-*.txt

Why: py-spy says how the CPU time of a request is shared, not why a stage costs three times
what the same code costs in a loop. A pure function given the same arguments does the same
work, so its time under the bench's load against its time repeated back to back, in the same
process, with the same arguments, is what the load itself costs it: code and data evicted
between two uses of it by the other 49 connections' requests and the kernel's socket work.

In every `token-sidecar serve` process (not the bench, not the pass-through), each function
of TARGETS is replaced where its callers look it up by a wrapper that adds up its
`perf_counter_ns` time and keeps its last arguments; at exit, the last arguments are given
to it again `REPLAYS` times in a row (best of 5 batches: the warm figure), and a line per
function goes to `INTIME_DIR/intime-<pid>.txt`: calls, mean µs under load, warm µs, their
ratio. The wrapper's own cost (two timer reads, the call through it, ~0.1 µs) is measured
the same way and printed first. Not part of the product: nothing in sidecar/ imports it.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_OUT = os.environ.get("INTIME_DIR", "")
REPLAYS = 2000

# (label, module, attribute, where callers look it up): each one is pure (the same arguments,
# the same work and result) so that it can be replayed at exit.
TARGETS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("DPoP: validate_proof (RFC 9449 §4.3, the signature included)",
     "sidecar.core.dpop.validate", "validate_proof", ("sidecar.core.steps",)),
    ("DPoP: ES256 verify (cryptography, OpenSSL)", "", "ES256", ()),
    ("store: store_key (sha256 of the value)", "sidecar.ports", "store_key",
     ("sidecar.adapters.memory", "sidecar.adapters.redis.store")),
    ("JOSE: b64url_decode", "sidecar.core.jose.compact", "b64url_decode",
     ("sidecar.core.jose.keys", "sidecar.core.dpop.header")),
)


class _Timed:
    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.calls = 0
        self.nanoseconds = 0
        self.last: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        result = self.function(*args, **kwargs)
        self.nanoseconds += time.perf_counter_ns() - started
        self.calls += 1
        self.last = (args, kwargs)
        return result

    def warm_microseconds(self) -> float:
        if self.last is None:
            return 0.0
        args, kwargs = self.last
        function = self.function
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter_ns()
            for _ in range(REPLAYS):
                function(*args, **kwargs)
            best = min(best, (time.perf_counter_ns() - started) / REPLAYS / 1000)
        return best


def _install_es256() -> _Timed:
    algorithms = importlib.import_module("sidecar.core.jose.algorithms")
    es256 = algorithms.ALGORITHMS["ES256"]
    timed = _Timed(es256.verify)
    object.__setattr__(es256, "verify", timed)  # a frozen dataclass, patched for the bench
    return timed


def _install(out: Path) -> None:
    timers: list[tuple[str, _Timed]] = []
    for label, module_name, attribute, users in TARGETS:
        if attribute == "ES256":
            timers.append((label, _install_es256()))
            continue
        timed = _Timed(getattr(importlib.import_module(module_name), attribute))
        for user in (module_name, *users):
            setattr(importlib.import_module(user), attribute, timed)
        timers.append((label, timed))
    empty = _Timed(lambda: None)

    def write() -> None:
        for _ in range(REPLAYS):
            empty()
        lines = [f"the wrapper itself: {empty.nanoseconds / empty.calls / 1000:.2f} us a call"]
        # Every figure under load is read before any replay: a replayed function calls the
        # others (validate_proof calls the ES256 verify), warm.
        under_load = [(label, timed, timed.calls, timed.nanoseconds / max(timed.calls, 1) / 1000)
                      for label, timed in timers]
        for label, timed, calls, microseconds in under_load:
            if not calls:
                lines.append(f"{label}: not called")
                continue
            warm = timed.warm_microseconds()
            lines.append(f"{label}: {calls} calls, {microseconds:.2f} us under load, "
                         f"{warm:.2f} us warm, x{microseconds / warm:.2f}")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"intime-{os.getpid()}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    atexit.register(write)


if _OUT and "serve" in sys.argv and "sidecar" in " ".join(sys.argv):
    _install(Path(_OUT))
