"""The cyclic garbage collector of a long-running server (`server.gc`).

CPython's defaults suit a program that builds and drops object graphs; a server holding tens
of thousands of startup objects (modules, functions, the configuration, the aiohttp
application) and answering with short-lived ones pays for them twice. Measured with
`gc.callbacks` in the worker under `bench/run.py`'s load (DPoP, memory store and Redis, 50
connections, 8 s), with the interpreter's defaults:

- every full collection walked the ~68 000 objects that exist from startup on and never die
  (and the memory store's dict of entries): 40-45 ms each, a tail-latency spike every
  second or two;
- the young generation was collected every 700 allocations, each pass walking the objects of
  the ~50 requests in flight (0.3 ms), promoting them to the older generations, where they
  die later and make full collections come sooner. These passes found almost no garbage:
  1 650 objects in 500-1 000 passes. In all 0.57-0.72 s of 9.6 s of CPU time (6-7%), p99
  63-73 ms.

"tuned" (the default), once the server has started: `gc.freeze()` moves the startup objects
to the permanent generation (never walked, never collected), and the young generation is
collected every `YOUNG_THRESHOLD` allocations: in the same runs 0.09-0.12 s (1%), p99
30-35 ms. Reference counting frees what it always freed; only cyclic garbage waits longer,
at most `YOUNG_THRESHOLD` allocations' worth. A reload (SIGHUP, or the client registry's
file changing) replaces objects that were frozen with the rest: once the old resources are
closed (`SidecarState.swap`), `refreeze` collects them and freezes what is still alive.
"python" leaves the interpreter's defaults alone.
"""

from __future__ import annotations

import asyncio
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
    """After a reload, once what it replaced is closed: those objects were frozen at startup;
    thawed and collected, what is still alive is frozen again. Nothing to do when nothing was
    frozen."""
    if gc.get_freeze_count() == 0:
        return
    gc.unfreeze()
    gc.collect()
    gc.freeze()


async def refreeze_after(seconds: float) -> None:
    """`refreeze` once a swap's old resources had `seconds` to finish their requests and
    close: frozen again while still alive, their cycles would never be collected."""
    await asyncio.sleep(seconds)
    refreeze()
