"""What a store failure means (`store.failure_mode`), decided in one place.

closed (default): the request ends with `503 temporarily_unavailable` and `Retry-After`;
nothing whose replay check did not complete is forwarded. open: the check is skipped, and
the caller tells the upstream so (`X-Token-Replay-Check: skipped`). A full store that refuses
(`StoreFullError`) is `503` in both modes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Generic, NamedTuple, TypeVar

from sidecar import errors
from sidecar.errors import OAuthError
from sidecar.ports import StoreError, StoreFullError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoreFailurePolicy:
    """What `store_call` reads from the configuration."""

    fails_open: bool  # store.failure_mode = "open"
    retry_after_seconds: int


class StoreOutcome(NamedTuple, Generic[T]):
    """What a store call gave (`value`), or that it was skipped (`store.failure_mode =
    "open"`). Read-only, as a frozen dataclass would be. Fast path: a tuple, made once or
    twice a request (the replay check, the binding), where a frozen dataclass's `__init__`
    set each field through `object.__setattr__` (py-spy: 2.3 µs of a DPoP request under
    load); a generic record cannot be a slots dataclass with `Final` fields
    (tests/test_model.py), mypy's `Final` holding no type variable."""

    value: T | None
    skipped: bool = False


async def store_call(call: Awaitable[T],
                     policy: StoreFailurePolicy) -> StoreOutcome[T] | OAuthError:
    try:
        return StoreOutcome(await call)
    except StoreFullError as exc:
        return errors.temporarily_unavailable(
            "store.full", "The replay cache is full; try again shortly.", detail=str(exc),
        ).with_headers(("Retry-After", str(policy.retry_after_seconds)))
    except StoreError as exc:
        if policy.fails_open:
            return StoreOutcome(None, skipped=True)
        return store_unavailable(policy, str(exc))


def store_unavailable(policy: StoreFailurePolicy, detail: str) -> OAuthError:
    return errors.temporarily_unavailable(
        "store.unavailable", "The replay cache is unavailable; try again shortly.",
        detail=detail,
    ).with_headers(("Retry-After", str(policy.retry_after_seconds)))
