"""An authorization server that knows no DPoP, as django-oauth-toolkit behaves: opaque tokens,
RFC 7662 introspection answering `{"active", "client_id", "scope", "exp"}` with no `cnf`,
RFC 7009 revocation, an RFC 8414 metadata document with an ETag. A real HTTP server.

For the resource side's introspection source: `issue` a token with the claims its
introspection answer will hold (`cnf` included, as a DPoP-aware AS would); the resource
server's credentials are checked when `introspection_credentials` is set; the endpoint can be
made slow or failing."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import web

METADATA: dict[str, Any] = {
    "issuer": "https://as.example.com",
    "token_endpoint": "https://as.example.com/token",
    "introspection_endpoint": "https://as.example.com/introspect",
    "revocation_endpoint": "https://as.example.com/revoke",
    "grant_types_supported": ["client_credentials", "refresh_token"],
    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    "dpop_signing_alg_values_supported": ["HS256"],  # wrong on purpose: the sidecar decides
    "service_documentation": "https://as.example.com/docs",
}


@dataclass
class OpaqueTokenServer:
    issued: dict[str, dict[str, Any]] = field(default_factory=dict)
    introspection_bodies: list[bytes] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    introspection_extra: dict[str, Any] = field(default_factory=dict)
    expires_in: int | None = 3600
    introspection_credentials: tuple[str, str] | None = None  # (client_id, secret) required
    introspection_authorizations: list[str] = field(default_factory=list)
    introspection_status: int = 200
    introspection_delay: float = 0.0
    url: str = ""

    def issue(self, **claims: Any) -> str:
        """A new token whose active introspection answer is `claims` (plus `exp` in an hour
        unless given)."""
        token = secrets.token_urlsafe(24)
        self.issued[token] = {"exp": int(time.time()) + 3600, **claims}
        return token

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/introspect", self._introspect)
        app.router.add_post("/revoke", self._revoke)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        app.router.add_get("/.well-known/openid-configuration", self._metadata)
        return app

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode()))
        token = secrets.token_urlsafe(24)
        self.issued[token] = {"client_id": form.get("client_id", ""),
                              "scope": form.get("scope", "read"),
                              "exp": int(time.time()) + 3600}
        answer: dict[str, Any] = {"access_token": token, "token_type": "Bearer",
                                  "scope": self.issued[token]["scope"]}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer, headers={"Cache-Control": "no-store"})

    async def _introspect(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.introspection_bodies.append(body)
        self.introspection_authorizations.append(request.headers.get("Authorization", ""))
        if self.introspection_delay:
            await asyncio.sleep(self.introspection_delay)
        if self.introspection_status != 200:
            return web.json_response({"error": "server_error"}, status=self.introspection_status)
        if self.introspection_credentials is not None and \
                request.content_type != "application/x-www-form-urlencoded":
            # As oauthlib (DOT) does: a body of another type holds no token parameter.
            return web.json_response({"error": "invalid_request"}, status=400)
        if self.introspection_credentials is not None and not self._authorized(request):
            return web.json_response({"error": "invalid_client"}, status=401,
                                     headers={"WWW-Authenticate": 'Basic realm="as"'})
        form = dict(parse_qsl(body.decode()))
        if "token" not in form:
            return web.json_response({"error": "invalid_request"}, status=400)
        token = form["token"]
        if token not in self.issued or token in self.revoked:
            return web.json_response({"active": False})
        return web.json_response({"active": True, **self.issued[token],
                                  **self.introspection_extra})

    def last_form(self) -> dict[str, str]:
        """The form of the last introspection request."""
        return dict(parse_qsl(self.introspection_bodies[-1].decode()))

    def _authorized(self, request: web.Request) -> bool:
        assert self.introspection_credentials is not None
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        # RFC 6749 §2.3.1: both parts form-urlencoded before they are joined.
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) == self.introspection_credentials

    async def _revoke(self, request: web.Request) -> web.Response:
        # As DOT does (RFC 7009 §2.1): only the client a token was issued to revokes it, and
        # every caller gets 200.
        form = dict(parse_qsl((await request.read()).decode()))
        token = form.get("token", "")
        if token in self.issued and self.issued[token]["client_id"] == form.get("client_id"):
            self.revoked.append(token)
        return web.Response(status=200)

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.Response(body=json.dumps(METADATA).encode(), content_type="application/json",
                            headers={"ETag": '"upstream-v1"', "Cache-Control": "max-age=60"})
