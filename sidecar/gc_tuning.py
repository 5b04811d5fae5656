"""The cyclic garbage collector of a long-running server (`server.gc`).

CPython's defaults suit a program that builds and drops object graphs; a server holding tens
of thousands of startup objects (modules, functions, the configuration, the aiohttp
application) and answering with short-lived ones pays for them twice, measured with
`gc.callbacks` in a worker under `bench/run.py`'s load (DPoP on Redis, 50 connections):

- every full collection walked the ~68 000 objects that exist from startup on and never die:
  about 30 ms each, a tail-latency spike every second or so;
- the young generation was collected every 700 allocations, each pass walking the objects of
  the ~50 requests in flight (0.2 ms), promoting them to the older generations, where they
  die later and make full collections come sooner. These passes found almost no garbage:
  1 650 objects in 1 350 passes. In all 6% of the worker's CPU time, p99 45 ms.

"tuned" (the default), once the server has started: `gc.freeze()` moves the startup objects
to the permanent generation (never walked, never collected), and the young generation is
collected every `YOUNG_THRESHOLD` allocations: about ten passes in the same run, under 0.2%
of the CPU time, p99 21 ms. Reference counting frees what it always freed; only cyclic
garbage waits longer, at most `YOUNG_THRESHOLD` allocations' worth. A reload (SIGHUP)
replaces objects that were frozen with the rest: `refreeze` collects them and freezes
what is still alive. "python" leaves the interpreter's defaults alone.
"""

from __future__ import annotations

import gc

from sidecar.settings import GcMode

YOUNG_THRESHOLD = 10_000  # the interpreter's default is 700


def tune_collector(mode: GcMode) -> None:
    """Called once the server has started: everything made so far lives as long as it does."""
    if mode != "tuned":
        return
    gc.collect()  # the startup's own garbage is not frozen with the rest
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def refreeze() -> None:
    """After a reload: the replaced configuration's objects were frozen at startup; thawed
    and collected, what is still alive frozen again. Nothing to do when nothing was frozen."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()
