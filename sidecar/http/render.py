"""Every error the sidecar writes itself: OAuth JSON, `no-store` (RFC 6749 §5.2)."""

from __future__ import annotations

import json

from aiohttp import web

from sidecar.errors import OAuthError

NO_STORE_HEADERS = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def error_response(error: OAuthError, request_id: str | None = None) -> web.Response:
    response = web.Response(
        status=error.status,
        body=json.dumps(error.body, separators=(",", ":")).encode(),
        content_type="application/json",
    )
    for name, value in NO_STORE_HEADERS:
        response.headers[name] = value
    for name, value in error.headers:
        response.headers.add(name, value)
    if request_id:
        response.headers["X-Request-Id"] = request_id
    return response
