"""`running_loop()`: what `asyncio.get_running_loop()` returns, without its system call.

On CPython 3.11 `asyncio.get_running_loop()` (and `current_task()` without a loop) calls
`getpid()` every time, to tell a forked child from its parent (Modules/_asynciomodule.c
`get_running_loop`), and glibc no longer caches the pid: each call is a system call. The
hot path of a token request made several (the token hop's exchange, a Redis command's
future, the batch's task, the log line's flush): `py-spy record --native` found 4% of a
DPoP request on Redis in `getpid`.

Fast path: the loop found once is kept with the thread that ran it, and returned while that
thread asks and the loop still runs (a thread runs one loop at a time, so a running loop of
this thread is the running loop). A forked child forgets it (`os.register_at_fork`), which
is what the pid check was for; anything else asks asyncio.
"""

from __future__ import annotations

import asyncio
import os
import threading

_found: tuple[asyncio.AbstractEventLoop, int] | None = None  # (loop, the thread running it)


def running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop; RuntimeError when none runs (as asyncio's)."""
    found = _found
    if found is not None and found[1] == threading.get_ident() and found[0].is_running():
        return found[0]
    return _look_up()


def _look_up() -> asyncio.AbstractEventLoop:
    global _found  # noqa: PLW0603 - the one remembered loop, this module's whole point
    loop = asyncio.get_running_loop()
    _found = (loop, threading.get_ident())
    return loop


def _forget() -> None:
    global _found  # noqa: PLW0603
    _found = None


os.register_at_fork(after_in_child=_forget)
