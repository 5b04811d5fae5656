"""Assembling the aiohttp application: routes, the runtime built once, its clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.adapters import open_store
from sidecar.core.decide import Env
from sidecar.core.policy import Policy
from sidecar.http.parse import ReadPolicy
from sidecar.http.proxy import Upstream, open_session
from sidecar.http.runtime import CLOCK, POLICY, RUNTIME, SETTINGS, STORE, Runtime
from sidecar.http.token import par_endpoint, passthrough, token_endpoint
from sidecar.ports import Clock, ReplayStore, SystemClock
from sidecar.settings import Settings

__all__ = ["build_app"]


def build_app(
    settings: Settings, *, store: ReplayStore | None = None, clock: Clock | None = None
) -> web.Application:
    """The sidecar's token application. Raises ConfigError when the configuration cannot
    serve (unreadable secret file, unusable URL), before anything listens."""
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[POLICY] = Policy.from_settings(settings)
    app[CLOCK] = clock or SystemClock()
    if store is not None:
        app[STORE] = store
    app.cleanup_ctx.append(_runtime)
    app.router.add_route("*", settings.server.token_path, token_endpoint)
    if settings.dpop.par_path:
        app.router.add_route("*", settings.dpop.par_path, par_endpoint)
    app.router.add_route("*", "/{tail:.*}", passthrough)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    owns_store = STORE not in app
    store = app[STORE] if not owns_store else open_store(settings.store, app[CLOCK])
    session = open_session(settings.upstream)
    trust = settings.trust
    app[RUNTIME] = Runtime(
        settings=settings,
        read_policy=ReadPolicy.from_settings(settings),
        env=Env(app[POLICY], store, app[CLOCK]),
        upstream=Upstream(session, settings.upstream),
        stripped_headers=tuple(h for h in (trust.client_cert_header,
                                           trust.client_cert_chain_header) if h),
    )
    yield
    await session.close()
    if owns_store:
        await store.close()
