"""An authorization server that issues JWT access tokens (RFC 9068), signed with pyjwt, and
serves its keys (`jwks_uri`) and RFC 8414 metadata over real HTTP. Its keys rotate."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ISSUER = "https://as.example.com"


def ec_public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


@dataclass
class JwtAccessTokenServer:
    issuer: str = ISSUER
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = "at-key-1"
    jwks_hits: int = 0
    jwks_status: int = 200
    url: str = ""  # set once it runs
    # The time a token is issued at: the wall clock, or a test's own fixed time (a token
    # issued "now" must be now for the check it is made for, however late the test runs).
    clock: Callable[[], float] = time.time

    def rotate(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"at-key-{uuid.uuid4().hex[:6]}"

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [ec_public_jwk(self.key, self.kid)]}

    def claims(self, *, lifetime: int = 300, **extra: Any) -> dict[str, Any]:
        now = int(self.clock())
        return {"iss": self.issuer, "sub": "alice", "client_id": "app", "scope": "read",
                "aud": "https://api.example.com", "iat": now, "exp": now + lifetime,
                "jti": uuid.uuid4().hex, **extra}

    def token(self, *, typ: str | None = "at+jwt", headers: dict[str, Any] | None = None,
              remove: tuple[str, ...] = (), **extra: Any) -> str:
        """An access token signed with the current key; `extra` claims override the usual
        ones, `remove` leaves claims out."""
        claims = {k: v for k, v in self.claims(**extra).items() if k not in remove}
        # pyjwt writes typ "JWT" unless told otherwise; None leaves it out.
        header: dict[str, Any] = {"kid": self.kid, "typ": typ, **(headers or {})}
        return jwt.encode(claims, self.key, algorithm="ES256", headers=header)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/.well-known/oauth-authorization-server", self._metadata)
        return app

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_hits += 1
        if self.jwks_status != 200:
            return web.Response(status=self.jwks_status)
        return web.json_response(self.jwks)

    async def _metadata(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.issuer, "jwks_uri": f"{self.url}/jwks",
                                  "token_endpoint": f"{self.url}/token"})
