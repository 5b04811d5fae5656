"""Stateless time-window tokens: DPoP nonces (RFC 9449 §8) and attestation challenges.

A token is `base64url(HMAC-SHA256(secret, label || purpose || step))` where
`step = floor(now / step_seconds)`. Nothing is stored: any replica holding the same secret
computes the same token for the same step, so every replica accepts every replica's tokens
(the design of node-oidc-provider, proposed in danielfett/draft-dpop#88). A token issued in
step `s` is accepted while the verifier's current step is within `s ± window_steps`: with the
defaults (60 s, ±2) it lives at least two minutes, and replicas whose clocks disagree by up to
two steps still agree.

Rotation without downtime: the first secret signs, every secret verifies. Put the new secret
on the first line on every replica, wait one token lifetime, then remove the old one.

`purpose` is mixed into the MAC, so a DPoP nonce is never accepted as an attestation
challenge (or the other way round) even with the same secret file.

The token is 43 base64url characters: inside `1*NQCHAR` (RFC 9449 §8.1), so it can be sent
as a `DPoP-Nonce` header value and embedded in a JWT claim as is.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from typing import Final

from sidecar.core.jose.compact import b64url_encode

TOKEN_LENGTH: Final = 43  # base64url of 32 bytes, no padding
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{43}")
_LABEL: Final = b"token-sidecar/windowed-hmac/v1\x00"


class WindowedHmac:
    __slots__ = ("_keys", "_memo", "purpose", "step_seconds", "window_steps")

    def __init__(self, secrets: tuple[str, ...], step_seconds: int, window_steps: int,
                 purpose: str) -> None:
        """Raises ValueError on a bad configuration (at startup, never per request)."""
        if not secrets or not all(secrets):
            raise ValueError("at least one non-empty secret is required")
        if step_seconds <= 0:
            raise ValueError("step_seconds must be positive")
        if window_steps < 0:
            raise ValueError("window_steps must not be negative")
        if not purpose or "\x00" in purpose:
            raise ValueError("purpose must be a non-empty string without NUL")
        self._keys = tuple(s.encode("utf-8") for s in secrets)
        self.step_seconds = step_seconds
        self.window_steps = window_steps
        self.purpose = purpose
        # (step, token issued in that step, every token accepted in that step)
        self._memo: tuple[int, str, tuple[bytes, ...]] | None = None

    @property
    def lifetime_seconds(self) -> int:
        """The longest time a token can be accepted after it was issued."""
        return (self.window_steps + 1) * self.step_seconds

    def issue(self, now: float) -> str:
        """The current token (the same for every caller within one step)."""
        return self._for_step(self._step(now))[1]

    def verify(self, value: object, now: float) -> bool:
        """True when `value` was issued, with any of the secrets, within the window.

        Never raises; every candidate is compared in constant time and all of them are
        compared, so the time taken does not depend on which one (if any) matched.
        """
        if not isinstance(value, str) or not _TOKEN.fullmatch(value):
            return False
        if not math.isfinite(now):
            return False
        presented = value.encode("ascii")
        matched = False
        for candidate in self._for_step(self._step(now))[2]:
            matched |= hmac.compare_digest(candidate, presented)
        return matched

    def _step(self, now: float) -> int:
        return math.floor(now / self.step_seconds)

    def _for_step(self, step: int) -> tuple[int, str, tuple[bytes, ...]]:
        memo = self._memo
        if memo is not None and memo[0] == step:
            return memo
        issued = self._token(self._keys[0], step)
        accepted = tuple(
            self._token(key, s).encode("ascii")
            for key in self._keys
            for s in range(step - self.window_steps, step + self.window_steps + 1)
        )
        memo = (step, issued, accepted)
        self._memo = memo
        return memo

    def _token(self, key: bytes, step: int) -> str:
        # The step in decimal: unambiguous (it comes last) and without any range limit.
        message = _LABEL + self.purpose.encode("utf-8") + b"\x00" + str(step).encode("ascii")
        return b64url_encode(hmac.new(key, message, hashlib.sha256).digest())
