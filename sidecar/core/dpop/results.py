"""What `validate_proof` returns for an accepted proof (RFC 9449 §4.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class DpopProof:
    """An accepted proof. `replay_key` (`<jkt>:<jti>`) must be burned by the caller with
    `first_use(..., ttl_seconds=replay_ttl_seconds)` after the rest of the request passed."""

    jkt: Final[str]
    jti: Final[str]
    iat: Final[int]
    nonce: Final[str | None]
    replay_key: Final[str]
    replay_ttl_seconds: Final[float]
