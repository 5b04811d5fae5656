"""Assembling the aiohttp applications: the token application and the admin application."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.core.policy import Policy
from sidecar.http.admin import build_admin_app
from sidecar.http.admission import Admission
from sidecar.http.metrics import Metrics
from sidecar.http.resource import inline_resource
from sidecar.http.routing import one_route_application
from sidecar.http.runtime import STATE, SidecarState
from sidecar.http.token import checked_target, dispatch
from sidecar.ports import Clock, ReplayStore, SystemClock
from sidecar.settings import Settings

__all__ = ["build_admin_app", "build_app"]


def build_app(
    settings: Settings, *, store: ReplayStore | None = None, clock: Clock | None = None,
    metrics: Metrics | None = None,
) -> web.Application:
    """The sidecar's token application. Raises ConfigError when the configuration cannot
    serve (unreadable secret file, unusable URL), before anything listens."""
    # One route (`handle`): which path is the token endpoint is read from the current
    # settings, so a reload can change it (see `dispatch`).
    app = one_route_application(handle, client_max_size=settings.server.max_body_bytes)
    metrics = metrics or Metrics(client_id_label=settings.metrics.client_id_label)
    app[STATE] = SidecarState(
        settings=settings,
        policy=Policy.from_settings(settings, LOCAL_FILES),
        clock=clock or SystemClock(),
        metrics=metrics,
        # Bounds of the process, read once: a reload does not change them.
        admission=Admission.from_settings(settings.server, metrics),
        given_store=store,
    )
    app.cleanup_ctx.append(_lifetime)
    return app


async def handle(request: web.Request) -> web.StreamResponse:
    """Every request: its target checked, then the inline door, then `dispatch`.

    Fast path: the two steps are called here, not installed as middlewares, which the
    route (sidecar/http/routing.py) makes possible: with any middleware aiohttp runs one
    more of its own on every request (a context manager setting the current app) behind a
    chain of partials. The order is the one the middlewares had."""
    return await checked_target(request, _resource_or_token)


async def _resource_or_token(request: web.Request) -> web.StreamResponse:
    return await inline_resource(request, dispatch)


async def _lifetime(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    state.start()
    await state.warm_up()
    yield
    await state.close()
