"""What `validate_proof` returns for an accepted proof (RFC 9449 §4.3)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DpopProof:
    """An accepted proof. `replay_key` (`<jkt>:<jti>`) must be burned by the caller with
    `first_use(..., ttl_seconds=replay_ttl_seconds)` after the rest of the request passed."""

    jkt: str
    jti: str
    iat: int
    nonce: str | None
    replay_key: str
    replay_ttl_seconds: float
