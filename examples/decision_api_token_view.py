"""An authorization server's token endpoint that calls the decision API instead of being
proxied (README "Calling instead of proxying").

The AS keeps its own HTTP stack and TLS; for each token request it posts what it received to
`POST /api/auth/token` and acts on `action`:

- `OK`, `JWT_BEARER`, `TOKEN_EXCHANGE`: the request is valid; issue the token, bound to
  `dpopJkt` (token_type DPoP, `cnf.jkt`) or `certificateThumbprint` (`cnf["x5t#S256"]`) when
  present, for `accessTokenDuration` seconds when given, to `subject` for `JWT_BEARER`.
- `PASSWORD`: valid in form; check `username`/`password` yourself, then issue as for `OK`.
- `BAD_REQUEST`, `INVALID_CLIENT`, `INTERNAL_SERVER_ERROR`: return `responseContent` as it
  is, with `httpStatus` (and `WWW-Authenticate: Basic` for an `INVALID_CLIENT` that used Basic).
- Always: pass `dpopNonce` on as the `DPoP-Nonce` header when there is one.

Run: `python examples/decision_api_token_view.py http://127.0.0.1:8181 <api-key> 8000`.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
from aiohttp import web

API_URL = web.AppKey("api_url", str)
API_KEY = web.AppKey("api_key", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)
ISSUED = web.AppKey("issued", dict)  # access token -> what it was issued for (your database)


def basic_credentials(authorization: str | None) -> dict[str, str]:
    """`clientId`/`clientSecret` out of `Authorization: Basic` (RFC 6749 §2.3.1: each part is
    form-urlencoded inside the Basic value)."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "basic":
        return {}
    try:
        client_id, _, secret = base64.b64decode(value, validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return {"clientId": "", "clientSecret": ""}  # the API refuses it as invalid_client
    return {"clientId": unquote_plus(client_id), "clientSecret": unquote_plus(secret)}


def call_for(request: web.Request, body: str) -> dict[str, Any]:
    call: dict[str, Any] = {"parameters": body, "htm": request.method,
                            **basic_credentials(request.headers.get("Authorization"))}
    for header, field in (("DPoP", "dpop"), ("OAuth-Client-Attestation", "oauthClientAttestation"),
                          ("OAuth-Client-Attestation-PoP", "oauthClientAttestationPop")):
        if header in request.headers:
            call[field] = request.headers[header]
    # With TLS terminated here, the client certificate is in hand: send it as PEM.
    tls = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    if der:
        call["clientCertificate"] = _pem(der)
    return call


def _pem(der: bytes) -> str:
    text = base64.encodebytes(der).decode()
    return f"-----BEGIN CERTIFICATE-----\n{text}-----END CERTIFICATE-----\n"


async def token(request: web.Request) -> web.Response:
    body = await request.text()
    async with request.app[SESSION].post(
            request.app[API_URL] + "/api/auth/token", json=call_for(request, body),
            headers={"Authorization": f"Bearer {request.app[API_KEY]}"}) as answer:
        if answer.status != 200:  # the call itself was refused (key, body): our bug
            return web.json_response({"error": "server_error"}, status=500)
        decision = await answer.json()
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if "dpopNonce" in decision:
        headers["DPoP-Nonce"] = decision["dpopNonce"]
    action = decision["action"]
    if action in ("BAD_REQUEST", "INVALID_CLIENT", "INTERNAL_SERVER_ERROR"):
        if action == "INVALID_CLIENT" and "Authorization" in request.headers:
            headers["WWW-Authenticate"] = 'Basic realm="example-as"'
        return web.Response(status=decision["httpStatus"], text=decision["responseContent"],
                            content_type="application/json", headers=headers)
    if action == "PASSWORD" and not check_password(decision["username"], decision["password"]):
        return web.json_response({"error": "invalid_grant"}, status=400, headers=headers)
    return web.json_response(issue(request.app, decision), headers=headers)


def check_password(username: str, password: str) -> bool:
    return secrets.compare_digest(f"{username}:{password}", "alice:wonderland")  # your users


def issue(app: web.Application, decision: dict[str, Any]) -> dict[str, Any]:
    access_token = secrets.token_urlsafe(32)
    cnf = ({"jkt": decision["dpopJkt"]} if "dpopJkt" in decision else
           {"x5t#S256": decision["certificateThumbprint"]}
           if "certificateThumbprint" in decision else None)
    app[ISSUED][access_token] = {"client_id": decision.get("clientId"), "cnf": cnf,
                                 "sub": decision.get("subject")}
    expires_in = decision.get("accessTokenDuration") or 3600
    return {"access_token": access_token, "expires_in": expires_in,
            "token_type": "DPoP" if "dpopJkt" in decision else "Bearer",
            **({"scope": " ".join(decision["scopes"])} if "scopes" in decision else {})}


def build(api_url: str, api_key: str) -> web.Application:
    app = web.Application()
    app[API_URL], app[API_KEY], app[ISSUED] = api_url, api_key, {}

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession() as client:
            app[SESSION] = client
            yield

    app.cleanup_ctx.append(session)
    app.router.add_post("/token", token)
    return app


if __name__ == "__main__":
    api, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps({"token_endpoint": f"http://127.0.0.1:{port}/token"}))
    web.run_app(build(api, key), host="127.0.0.1", port=port)
