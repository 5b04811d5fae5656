"""The only fakes the tests use: a clock, and a JWKS fetcher that serves documents the test
sets (the real HTTP fetcher has its own tests against a real server)."""

from __future__ import annotations

import asyncio
import time

from sidecar.ports import FetchError


class FakeClock:
    def __init__(self, now: float | None = None) -> None:
        self.t = float(int(time.time())) if now is None else now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class ScriptedFetcher:
    """Serves a mutable document per URL; counts the calls; can fail or be slow."""

    def __init__(self, missing_status: int = 500) -> None:
        self.documents: dict[str, object] = {}
        self.calls = 0
        self.fail = False
        self.delay = 0.0
        self._missing_status = missing_status

    async def get_json(self, url: str) -> object:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail or url not in self.documents:
            raise FetchError(f"{url}: HTTP status {self._missing_status}")
        return self.documents[url]
