"""`token-sidecar demo`: an example token endpoint and the sidecar in one process.

The example upstream is deliberately naive (it issues a token to anyone who reaches it): the
point of the demo is to show what the sidecar stops before it gets there (a wrong client
secret included: the demo ships a client registry, `demo_registry/`) and what context
reaches it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from sidecar.http.runtime import CONTEXT_PREFIX
from sidecar.serve import serve
from sidecar.settings import Settings, settings_from_mapping

# The registry shipped in the package (package data): one client, whose secret is public.
DEMO_REGISTRY = Path(__file__).parent / "demo_registry" / "clients.toml"
DEMO_CLIENT, DEMO_SECRET = "demo-client", "demo-secret"


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


@dataclass(frozen=True, slots=True)
class DemoPorts:
    sidecar: int = 8080
    upstream: int = 9000
    admin: int = 9090


def demo_settings(ports: DemoPorts, environ: Mapping[str, str]) -> Settings:
    """The demo's configuration: loopback only, the in-memory store, and the registry shipped
    in the package, so that the sidecar authenticates `demo-client` itself."""
    return settings_from_mapping({
        "server": {"listen": f"127.0.0.1:{ports.sidecar}",
                   "admin_listen": f"127.0.0.1:{ports.admin}",
                   "public_token_endpoint": f"http://127.0.0.1:{ports.sidecar}/token",
                   "shutdown_grace_seconds": 2.0},
        "upstream": {"url": f"http://127.0.0.1:{ports.upstream}"},
        "store": {"url": "memory://"},
        "clients": {"registry_file": str(DEMO_REGISTRY)},
        "logging": {"format": "human"},
    }, environ)


def instructions(ports: DemoPorts) -> str:
    url = f"http://127.0.0.1:{ports.sidecar}/token"
    admin = f"http://127.0.0.1:{ports.admin}"
    basic = f"-u {DEMO_CLIENT}:{DEMO_SECRET}"
    return f"""
token-sidecar demo: the sidecar listens on {url},
in front of an example token endpoint, with the in-memory store and a client registry of
one client, {DEMO_CLIENT} (secret {DEMO_SECRET}, client_secret_basic), which the sidecar
authenticates itself: {DEMO_REGISTRY}

A valid request (authenticated, forwarded; the example upstream shows the context it got):

  curl -s {basic} -d grant_type=client_credentials -d scope=read {url}

A wrong secret (401 invalid_client, answered by the sidecar; nothing reaches the upstream):

  curl -s -u {DEMO_CLIENT}:wrong-secret -d grant_type=client_credentials {url}

The parameter 'scope' sent twice (400 invalid_request, RFC 6749 3.2), and an unknown grant
type (400 unsupported_grant_type):

  curl -s {basic} -d grant_type=client_credentials -d scope=a -d scope=b {url}
  curl -s {basic} -d grant_type=magic {url}

A forged context header: the upstream sees the sidecar's X-Token-Client-Id, not 'admin':

  curl -s {basic} -H 'X-Token-Client-Id: admin' -d grant_type=client_credentials {url}

Admin port: {admin}/metrics {admin}/livez {admin}/readyz

Press Ctrl-C to stop.
"""


async def run_demo(settings: Settings, ports: DemoPorts) -> None:
    """The example upstream, then the sidecar as `serve` runs it (both listeners, SIGTERM
    and SIGINT drain and stop), with the instructions printed once it accepts connections."""
    upstream = web.AppRunner(example_upstream(), access_log=None)
    await upstream.setup()
    try:
        await web.TCPSite(upstream, "127.0.0.1", ports.upstream).start()
        await serve(settings, started=lambda: print(instructions(ports), flush=True))
    finally:
        await upstream.cleanup()
