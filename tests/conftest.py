from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from sidecar.http.app import build_app
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import Settings, settings_from_mapping
from tests.support.servers import RecordingUpstream, start_app

pytest_plugins = ["tests.support.redis_fixtures", "tests.support.dot_fixtures"]

TOKEN_URL_PUBLIC = "https://as.example.com/token"


@dataclass
class Sidecar:
    url: str
    settings: Settings
    upstream: RecordingUpstream

    @property
    def token_url(self) -> str:
        return self.url + self.settings.server.token_path


def make_settings(upstream_url: str, **sections: dict[str, Any]) -> Settings:
    raw: dict[str, dict[str, Any]] = {
        "server": {"public_token_endpoint": TOKEN_URL_PUBLIC},
        "upstream": {"url": upstream_url, "timeout_seconds": 5},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return settings_from_mapping(raw, {})


@pytest.fixture
async def upstream() -> AsyncIterator[RecordingUpstream]:
    recorder = RecordingUpstream()
    runner, url = await start_app(recorder.app())
    recorder.url = url
    yield recorder
    await runner.cleanup()


@pytest.fixture
async def api() -> AsyncIterator[RecordingUpstream]:
    """An API behind the resource side (`resource.upstream_url`), recording what reached it."""
    recorder = RecordingUpstream()
    runner, recorder.url = await start_app(recorder.app())
    yield recorder
    await runner.cleanup()


SidecarFactory = Callable[..., Awaitable[Sidecar]]


@pytest.fixture
async def sidecar_factory(upstream: RecordingUpstream) -> AsyncIterator[SidecarFactory]:
    runners = []

    async def start(upstream_url: str | None = None, *, port: int = 0,
                    replay_store: ReplayStore | None = None, clock: Clock | None = None,
                    **sections: dict[str, Any]) -> Sidecar:
        """A sidecar in front of the recording upstream; `port` fixes its port (so that a
        test can make its own URL the public one, as a real client signs it)."""
        settings = make_settings(upstream_url or upstream.url, **sections)
        runner, url = await start_app(build_app(settings, store=replay_store, clock=clock),
                                     port=port)
        runners.append(runner)
        return Sidecar(url, settings, upstream)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sidecar(sidecar_factory: SidecarFactory) -> Sidecar:
    return await sidecar_factory()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
