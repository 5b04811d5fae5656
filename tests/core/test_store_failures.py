"""What a store failure means (sidecar.core.store_failures): `store.failure_mode` closed or
open, a full store, and the outcome's record."""

from __future__ import annotations

import dataclasses

import pytest

from sidecar.core.store_failures import StoreFailurePolicy, StoreOutcome, store_call
from sidecar.errors import OAuthError
from sidecar.ports import StoreError, StoreFullError

CLOSED = StoreFailurePolicy(fails_open=False, retry_after_seconds=7)
OPEN = StoreFailurePolicy(fails_open=True, retry_after_seconds=7)


async def answering(value: bool) -> bool:
    return value


async def failing(error: Exception) -> bool:
    raise error


@pytest.mark.parametrize("policy", [CLOSED, OPEN], ids=["closed", "open"])
@pytest.mark.parametrize("value", [True, False])
async def test_an_answer_is_the_outcome_in_both_modes(policy: StoreFailurePolicy,
                                                      value: bool) -> None:
    outcome = await store_call(answering(value), policy)
    assert outcome == StoreOutcome(value)
    assert isinstance(outcome, StoreOutcome)
    assert outcome.value is value
    assert not outcome.skipped


@pytest.mark.parametrize(("policy", "error", "result_code"), [
    (CLOSED, StoreError("connection refused"), "store.unavailable"),
    (CLOSED, StoreFullError("memory store full"), "store.full"),
    (OPEN, StoreFullError("memory store full"), "store.full"),  # full refuses in both modes
], ids=["closed-unavailable", "closed-full", "open-full"])
async def test_a_failure_is_503_with_retry_after(policy: StoreFailurePolicy, error: Exception,
                                                 result_code: str) -> None:
    outcome = await store_call(failing(error), policy)
    assert isinstance(outcome, OAuthError)
    assert (outcome.status, outcome.code, outcome.result_code) == (
        503, "temporarily_unavailable", result_code)
    assert ("Retry-After", "7") in outcome.headers


async def test_open_mode_skips_an_unavailable_store() -> None:
    outcome = await store_call(failing(StoreError("timeout")), OPEN)
    assert outcome == StoreOutcome(None, skipped=True)


def test_an_outcome_is_read_only() -> None:
    outcome = StoreOutcome(True)
    with pytest.raises(AttributeError):
        outcome.skipped = True  # type: ignore[misc]
    assert not dataclasses.is_dataclass(outcome)  # a tuple: no per-field __setattr__
