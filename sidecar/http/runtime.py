"""Typed application state: what the handlers read, and how it is swapped on reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from sidecar.adapters import open_store
from sidecar.core.decide import Env
from sidecar.core.policy import Policy
from sidecar.http.metrics import InstrumentedStore, Metrics
from sidecar.http.parse import ReadPolicy
from sidecar.http.proxy import Upstream, open_session
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import Settings

CONTEXT_PREFIX = "X-Token-"
log = logging.getLogger("token_sidecar.runtime")


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a handler needs for one request. Immutable: a reload builds a new one and
    requests in flight finish with the one they started with."""

    settings: Settings
    read_policy: ReadPolicy
    env: Env
    upstream: Upstream
    stripped_headers: tuple[str, ...]  # certificate headers, dropped from untrusted peers


@dataclass
class Resources:
    """What a Runtime holds open; shared between runtimes while the settings allow."""

    store: ReplayStore
    owns_store: bool
    session: aiohttp.ClientSession


@dataclass
class SidecarState:
    settings: Settings
    policy: Policy
    clock: Clock
    metrics: Metrics
    given_store: ReplayStore | None = None
    runtime: Runtime | None = None
    resources: Resources | None = None
    draining: bool = False
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def started(self) -> bool:
        return self.runtime is not None

    def start(self) -> None:
        self.resources = self._open(self.settings, None)
        self.runtime = build_runtime(self.settings, self.policy, self.resources, self.clock)

    def swap(self, settings: Settings, policy: Policy) -> None:
        """Serve `settings` from now on. Resources whose settings did not change are kept;
        the others are closed once requests that started before the swap had time to end."""
        old = self.resources
        assert old is not None
        new = self._open(settings, old)
        self.settings, self.policy, self.resources = settings, policy, new
        self.runtime = build_runtime(settings, policy, new, self.clock)
        grace = settings.upstream.timeout_seconds + 1
        if new.session is not old.session:
            self._close_later(old.session.close, grace)
        if new.store is not old.store and old.owns_store:
            self._close_later(old.store.close, grace)

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self.resources is not None:
            await self.resources.session.close()
            if self.resources.owns_store:
                await self.resources.store.close()

    def _open(self, settings: Settings, old: Resources | None) -> Resources:
        keep_store = old is not None and settings.store == self.settings.store
        keep_session = old is not None and settings.upstream == self.settings.upstream
        if old is not None and keep_store:
            store, owns = old.store, old.owns_store
        elif self.given_store is not None:
            store, owns = InstrumentedStore(self.given_store, self.metrics), False
        else:
            store, owns = InstrumentedStore(open_store(settings.store, self.clock),
                                            self.metrics), True
        session = old.session if old is not None and keep_session \
            else open_session(settings.upstream)
        return Resources(store, owns, session)

    def _close_later(self, close: Callable[[], Awaitable[None]], delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await close()

        task = asyncio.get_running_loop().create_task(later())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def build_runtime(settings: Settings, policy: Policy, resources: Resources,
                  clock: Clock) -> Runtime:
    trust = settings.trust
    return Runtime(
        settings=settings,
        read_policy=ReadPolicy.from_settings(settings),
        env=Env(policy, resources.store, clock),
        upstream=Upstream(resources.session, settings.upstream),
        stripped_headers=tuple(h for h in (trust.client_cert_header,
                                           trust.client_cert_chain_header) if h),
    )


STATE = web.AppKey("state", SidecarState)
