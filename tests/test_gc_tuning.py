"""sidecar/gc_tuning.py: what `server.gc` does to the process's cyclic garbage collector."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sidecar.gc_tuning import YOUNG_THRESHOLD, refreeze, tune_collector


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
