"""One route for every request target, the cheap way.

The token listener routes every request to one handler, which reads the target itself
(sidecar/core/target.py). aiohttp's `/{tail:.*}` did that through its router (a walk over
the path's prefixes, a regular expression, a dict and an unquoted copy of the path per
request) and could not match '*' or authority-form targets (`CONNECT host:443`), which then
needed a middleware in front of the router; and with any middleware aiohttp runs one of its
own per request (a context manager setting the current app) behind a chain of partials.

`OneRoute` is a router that answers every request with its one route, whatever the target:
no walk, no match, no middleware. aiohttp deprecates passing a router to `Application`
(a DeprecationWarning, silenced here by its message; pyproject pins aiohttp < 4), not
routers of one's own (`aiohttp.abc.AbstractRouter.resolve`);
`tests/http/test_request_targets.py` sends every form of target, so an aiohttp upgrade that
routes otherwise fails loudly.
"""

from __future__ import annotations

import warnings

from aiohttp import web
from aiohttp.typedefs import Handler


class OneRoute(web.UrlDispatcher):
    def __init__(self, handler: Handler) -> None:
        super().__init__()
        resource = super().add_resource("/")
        self._route = resource.add_route("*", handler)

    def add_resource(self, path: str, *, name: str | None = None) -> web.Resource:
        # `resolve` answers every request with the one route: a route added later would
        # never be reached, so adding one is an error, not a silent no-op.
        raise RuntimeError("the token application has one route; dispatch reads the target")

    async def resolve(self, request: web.Request) -> web.UrlMappingMatchInfo:
        return web.UrlMappingMatchInfo({}, self._route)


def one_route_application(handler: Handler, *, client_max_size: int) -> web.Application:
    """An `Application` whose every request goes to `handler`."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "router argument is deprecated", DeprecationWarning)
        return web.Application(router=OneRoute(handler), client_max_size=client_max_size)
