"""The cyclic garbage collector's own time in a sidecar under load (bench/README.md).

    PYTHONPATH=bench/gcstats GCSTATS_DIR=/tmp/gc .venv/bin/python bench/run.py --only dpop-redis

Python imports `sitecustomize` at start from `PYTHONPATH`, and the bench passes its
environment to the servers it starts: in every `token-sidecar serve` process this times each
collection (`gc.callbacks`) and, at exit, writes a line to `GCSTATS_DIR/gc-<pid>.txt`:
collections, seconds and objects collected by generation, the process's CPU seconds, the
objects the collector tracks and how many are frozen (`server.gc = "tuned"`). Other
processes (the bench itself, the pass-through) are left alone. Not part of the product.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

_OUT = os.environ.get("GCSTATS_DIR", "")


def _install(out: Path) -> None:
    stats = {generation: [0, 0.0, 0] for generation in range(3)}  # passes, seconds, collected
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        entry = stats[info["generation"]]
        entry[0] += 1
        entry[1] += time.perf_counter() - started[0]
        entry[2] += info["collected"]

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        lines = [f"gen{generation}: {passes} passes, {seconds:.4f} s, {collected} collected"
                 for generation, (passes, seconds, collected) in stats.items()]
        lines.append(f"cpu {time.process_time():.3f} s, tracked {len(gc.get_objects())}, "
                     f"frozen {gc.get_freeze_count()}")
        (out / f"gc-{os.getpid()}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    gc.callbacks.append(timed)
    atexit.register(write)


if _OUT and "serve" in sys.argv and "sidecar" in " ".join(sys.argv):
    _install(Path(_OUT))
