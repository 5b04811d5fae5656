"""sidecar/running_loop.py: the running loop, remembered, never another one."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pytest
import uvloop

from sidecar import running_loop as module
from sidecar.running_loop import running_loop


async def same_as_asyncio() -> bool:
    return running_loop() is asyncio.get_running_loop()


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop],
                         ids=["asyncio", "uvloop"])
def test_each_loop_in_turn_is_the_running_loop(
        new_loop: Callable[[], asyncio.AbstractEventLoop]) -> None:
    for _ in range(3):  # a loop remembered, closed, and the next one found
        with asyncio.Runner(loop_factory=new_loop) as runner:
            assert runner.run(same_as_asyncio())
            assert runner.run(same_as_asyncio())


def test_no_loop_running_is_the_error_asyncio_raises() -> None:
    with asyncio.Runner() as runner:
        runner.run(same_as_asyncio())  # one remembered, now stopped
    with pytest.raises(RuntimeError, match="no running event loop"):
        running_loop()


async def test_another_threads_loop_is_not_this_threads() -> None:
    here = running_loop()
    seen: list[asyncio.AbstractEventLoop] = []

    async def there() -> None:
        seen.append(running_loop())
        await asyncio.sleep(0)
        seen.append(running_loop())

    thread = threading.Thread(target=asyncio.run, args=(there(),))
    thread.start()
    await asyncio.to_thread(thread.join)
    assert len(seen) == 2 and seen[0] is seen[1] and seen[0] is not here
    assert running_loop() is here is asyncio.get_running_loop()


async def test_a_forked_child_forgets_its_parents_loop() -> None:
    assert await same_as_asyncio()
    pid = os.fork()
    if pid == 0:  # the child: the copied loop "runs" in its memory, but nothing runs it
        os._exit(0 if module._found is None else 1)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
