"""sidecar/http/routing.py: the token application's one route (its targets:
tests/http/test_request_targets.py)."""

from __future__ import annotations

import pytest
from aiohttp import web

from sidecar.http.routing import one_route_application


async def _handler(request: web.Request) -> web.Response:
    return web.Response()


def test_a_route_added_later_is_an_error_not_a_route_never_reached() -> None:
    app = one_route_application(_handler, client_max_size=1024)
    with pytest.raises(RuntimeError, match="one route"):
        app.router.add_get("/other", _handler)
