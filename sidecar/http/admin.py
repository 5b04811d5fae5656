"""The admin application (`server.admin_listen`, never the token port): metrics and health.

- `/livez` (and `/healthz`): the event loop answers.
- `/startupz`: the token application has started.
- `/readyz`: configuration loaded, store reachable, not draining. Kubernetes takes the pod out
  of the Service when it fails, so SIGTERM flips it first.
- `/metrics`: Prometheus text format.

Its listener is bounded like the token port's (`SidecarRunner`, sidecar/http/server.py):
the same header, body and keep-alive timeouts, at most `server.admin_max_connections`
connections, none of them counted in the token port's connection metrics.
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from sidecar.http.runtime import ADMIN_APP, STATE, TOKEN_APP, SidecarState
from sidecar.ports import StoreError

_STORE_PING_TIMEOUT = 1.0


def build_admin_app(token_app: web.Application) -> web.Application:
    app = web.Application()
    app[TOKEN_APP] = token_app
    app[ADMIN_APP] = True
    app.router.add_get("/livez", _live)
    app.router.add_get("/healthz", _live)
    app.router.add_get("/startupz", _startup)
    app.router.add_get("/readyz", _ready)
    app.router.add_get("/metrics", _metrics)
    return app


def _state(request: web.Request) -> SidecarState:
    return request.app[TOKEN_APP][STATE]


async def _live(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _startup(request: web.Request) -> web.Response:
    started = _state(request).started
    return web.json_response({"status": "ok" if started else "starting"},
                             status=200 if started else 503)


async def _ready(request: web.Request) -> web.Response:
    state = _state(request)
    checks = {"config": "ok" if state.started else "not loaded",
              "draining": "yes" if state.draining else "no",
              "store": await _store_check(state)}
    ready = checks["config"] == "ok" and checks["draining"] == "no" and checks["store"] == "ok"
    return web.json_response({"status": "ready" if ready else "not ready", "checks": checks},
                             status=200 if ready else 503)


async def _store_check(state: SidecarState) -> str:
    if state.resources is None:
        return "not open"
    try:
        await asyncio.wait_for(state.resources.store.ping(), _STORE_PING_TIMEOUT)
    except (StoreError, TimeoutError):
        return "unreachable"
    return "ok"


async def _metrics(request: web.Request) -> web.Response:
    body = _state(request).metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
