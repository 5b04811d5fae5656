"""`token-sidecar demo`: an example token endpoint and the sidecar in one process.

The example upstream is deliberately naive (it issues a token to anyone): the point of the
demo is to show what the sidecar stops before it gets there and what context reaches it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping

from aiohttp import web

from sidecar.http.app import build_app
from sidecar.http.runtime import CONTEXT_PREFIX
from sidecar.http.server import SidecarRunner
from sidecar.settings import Settings, settings_from_mapping


def example_upstream() -> web.Application:
    app = web.Application()
    app.router.add_post("/token", _issue_token)
    app.router.add_get("/", _hello)
    return app


async def _issue_token(request: web.Request) -> web.Response:
    form = await request.post()
    context = {name: value for name, value in request.headers.items()
               if name.lower().startswith(CONTEXT_PREFIX.lower())}
    body: dict[str, object] = {
        "access_token": secrets.token_urlsafe(24),
        "token_type": "DPoP" if f"{CONTEXT_PREFIX}DPoP-JKT" in request.headers else "Bearer",
        "expires_in": 3600,
    }
    if form.get("grant_type") in ("authorization_code", "refresh_token"):
        body["refresh_token"] = secrets.token_urlsafe(24)
    # Shown so that a demo user sees what the sidecar told the upstream.
    body["sidecar_context"] = context
    return web.json_response(body)


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello from the example upstream: non-token paths pass through.\n")


def demo_settings(port: int, upstream_port: int, environ: Mapping[str, str]) -> Settings:
    return settings_from_mapping({
        "server": {"listen": f"127.0.0.1:{port}",
                   "public_token_endpoint": f"http://127.0.0.1:{port}/token"},
        "upstream": {"url": f"http://127.0.0.1:{upstream_port}"},
        "store": {"url": "memory://"},
        "logging": {"format": "human"},
    }, environ)


def instructions(port: int) -> str:
    url = f"http://127.0.0.1:{port}/token"
    return f"""
token-sidecar demo: the sidecar listens on {url},
in front of an example token endpoint, with the in-memory store.

A valid request (forwarded; the example upstream shows the context it received):

  curl -s -u demo-client:demo-secret -d grant_type=client_credentials -d scope=read {url}

A rejected one (the parameter 'scope' sent twice, RFC 6749 3.2; answered by the sidecar):

  curl -s -u demo-client:demo-secret -d grant_type=client_credentials -d scope=a -d scope=b {url}

An unknown grant type, and a forged context header that never reaches the upstream:

  curl -s -d grant_type=magic -d client_id=x {url}
  curl -s -H 'X-Token-Client-Authenticated: true' -d grant_type=client_credentials \\
       -d client_id=x {url}

Press Ctrl-C to stop.
"""


async def run_demo(settings: Settings, upstream_port: int, ready: asyncio.Event | None = None,
                   stop: asyncio.Event | None = None) -> None:
    upstream = web.AppRunner(example_upstream(), access_log=None)
    sidecar = SidecarRunner(build_app(settings))
    await upstream.setup()
    await sidecar.setup()
    host, _, port = settings.server.listen.rpartition(":")
    try:
        await web.TCPSite(upstream, "127.0.0.1", upstream_port).start()
        await web.TCPSite(sidecar, host, int(port)).start()
        print(instructions(int(port)), flush=True)
        if ready is not None:
            ready.set()
        await (stop or asyncio.Event()).wait()
    finally:
        await sidecar.cleanup()
        await upstream.cleanup()
