"""sidecar/gc_tuning.py: what `server.gc` does to the process's cyclic garbage collector."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from sidecar.gc_tuning import YOUNG_THRESHOLD, refreeze, tune_collector
from sidecar.http.app import build_app
from sidecar.http.runtime import STATE
from tests.conftest import make_settings
from tests.support.servers import start_app


@pytest.fixture(autouse=True)
def interpreter_defaults() -> Iterator[None]:
    """Every test starts and ends with nothing frozen and the thresholds it found."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


class Node:
    """A cycle: reference counting alone never frees it."""

    def __init__(self) -> None:
        self.me = self


def test_tuned_freezes_what_exists_and_collects_the_young_generation_less_often() -> None:
    older = gc.get_threshold()[1:]
    tune_collector("tuned")
    assert gc.get_freeze_count() > 1000  # the test process's own modules, functions, ...
    assert gc.get_threshold() == (YOUNG_THRESHOLD, *older)


def test_python_leaves_the_interpreter_alone() -> None:
    thresholds = gc.get_threshold()
    tune_collector("python")
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == thresholds


def test_garbage_made_before_the_freeze_is_not_frozen() -> None:
    node = Node()
    alive = weakref.ref(node)
    del node
    tune_collector("tuned")
    assert alive() is None


def test_a_frozen_cycle_dropped_by_a_reload_is_collected_by_refreeze() -> None:
    node = Node()
    alive = weakref.ref(node)
    tune_collector("tuned")
    del node  # the old configuration, replaced
    gc.collect()
    assert alive() is not None  # frozen: no collection looks at it
    refreeze()
    assert alive() is None
    assert gc.get_freeze_count() > 1000  # the rest frozen again


def test_refreeze_freezes_nothing_when_nothing_was_frozen() -> None:
    refreeze()
    assert gc.get_freeze_count() == 0


async def test_a_swap_collects_what_it_replaced_once_its_grace_is_over_not_before() -> None:
    """A reload (SIGHUP, the registry's file) swaps the runtime; the old resources serve the
    requests already started for upstream.timeout_seconds + 1, and are closed then. Frozen
    again while they live, their cycles would never be collected: the refreeze waits."""
    settings = make_settings("http://127.0.0.1:9", upstream={"timeout_seconds": 0.05})
    app = build_app(settings)
    runner, _ = await start_app(app)
    try:
        node = Node()  # stands for the old resources' cycles
        alive = weakref.ref(node)
        tune_collector("tuned")
        del node
        state = app[STATE]
        state.swap(state.settings, state.policy)
        await asyncio.sleep(0.5)
        gc.collect()
        assert alive() is not None  # still frozen: the grace (1.05 s) is not over
        for _ in range(40):  # the refreeze comes a second after the grace
            await asyncio.sleep(0.1)
            if alive() is None:
                break
        assert alive() is None
        assert gc.get_freeze_count() > 1000
    finally:
        await runner.cleanup()
