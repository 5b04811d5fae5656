"""The check-only listener of the resource side (`resource.check_listen`): a proxy asks,
the sidecar answers allow or deny, the proxy forwards or refuses. Three contracts, told
apart by the headers only a trusted proxy's are believed for:

- nginx `auth_request`: a subrequest to the sidecar whose own method and URI are the
  subrequest's; the client's are in `X-Original-Method` / `X-Original-URI` (set with
  `proxy_set_header` in deploy/nginx/token-sidecar-resource.conf);
- Traefik forwardAuth: `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`;
- Envoy ext_authz (HTTP service): the original method, path and headers arrive as they are.

The method and path checked against `htm` and `htu` are rebuilt from those headers when a
trusted proxy (`trust.trusted_proxies`) sent them, and are the request's own otherwise: an
untrusted `X-Original-URI` is ignored (then the subrequest's own path is what the proof must
name, and a proof made for the API fails). The `htu` origin is always
`resource.public_origin`, never `X-Forwarded-Host`.

Allowed: 200, no body, with the headers for the API (`Authorization: Bearer`, the
`X-Token-*` context) and `x-envoy-auth-headers-to-remove` naming the proof and the client's
own `X-Token-*` headers. Denied: the status, `WWW-Authenticate`, `DPoP-Nonce` and OAuth JSON,
which Envoy returns to the client as they are. nginx honours only 2xx, 401 and 403 from a
subrequest (anything else becomes its 500), so on that door a 400 is sent as 401: its
`WWW-Authenticate` still says `invalid_request`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Final

from aiohttp import web

from sidecar import errors
from sidecar.core.resource.check import Allowed, Denied, refuse
from sidecar.core.target import read_target
from sidecar.http.headers import fold
from sidecar.http.parse import check_cert_headers
from sidecar.http.render import error_response
from sidecar.http.resource import resource_request
from sidecar.http.resource_check import ResourceRuntime, record, run_check
from sidecar.http.runtime import CONTEXT_PREFIX, STATE, TOKEN_APP, Runtime
from sidecar.http.token import request_id_of

ENVOY, NGINX, TRAEFIK = "ext_authz", "auth_request", "forward_auth"
REMOVE_HEADER: Final = "x-envoy-auth-headers-to-remove"  # Envoy: drop these upstream
_DOOR_HEADERS: Final = ((NGINX, "X-Original-Method", "X-Original-URI"),
                        (TRAEFIK, "X-Forwarded-Method", "X-Forwarded-Uri"))


def build_check_app(token_app: web.Application) -> web.Application:
    """The check listener's application; it reads the token application's current runtime
    on every request, so a reload applies to it too."""
    app = web.Application()  # no body is ever read here
    app[TOKEN_APP] = token_app
    app.router.add_route("*", "/{tail:.*}", _check)
    return app


def original_request(request: web.BaseRequest,
                     trusted: bool) -> tuple[str, str | None, str | None]:
    """(door, method, raw target) of the request the proxy is asking about; the method is
    None when a trusted proxy named the URI without it, the target None when the headers
    name more than one request.

    A proxy passes the client's own headers on (Traefik forwardAuth passes them all), and
    sets only its own door's: a client that adds the other door's `X-Original-URI` or a
    second URI header would choose the method and path its proof is checked against. So
    exactly one door's URI header, sent once, is believed; two are refused."""
    if trusted:
        named = [(door, method_header, request.headers.getall(uri_header))
                 for door, method_header, uri_header in _DOOR_HEADERS
                 if uri_header in request.headers]
        if len(named) > 1 or any(len(uris) > 1 for _, _, uris in named):
            return named[0][0], None, request.method
        if named:
            door, method_header, uris = named[0]
            return door, uris[0], request.headers.get(method_header)
    return ENVOY, request.raw_path, request.method


_NO_METHOD: Final = errors.invalid_request("resource.no_original_method",
                                           "The proxy did not say the original method.")
_AMBIGUOUS: Final = errors.invalid_request(
    "resource.ambiguous_original_request",
    "The proxy's headers name more than one original request.")


async def _check(request: web.Request) -> web.Response:
    started = time.perf_counter()
    request_id = request_id_of(request)
    state = request.app[TOKEN_APP][STATE]
    runtime = state.runtime
    if runtime is None or runtime.resource is None:  # not started, or the side turned off
        return error_response(errors.temporarily_unavailable(
            "resource.not_serving", "The token check is not serving."), request_id)
    resource = runtime.resource
    door, raw, method = original_request(
        request, runtime.read_policy.is_trusted_peer(request.remote))
    verdict = await _verdict(request, runtime, resource, raw, method)
    response = _answer(verdict, door, request, request_id)
    record(verdict, door=door, request_id=request_id, status=response.status,
           started=started, metrics=state.metrics)
    return response


async def _verdict(request: web.Request, runtime: Runtime, resource: ResourceRuntime,
                   raw: str | None, method: str | None) -> Allowed | Denied:
    if raw is None:
        return refuse(_AMBIGUOUS, resource.policy)
    if not method:
        return refuse(_NO_METHOD, resource.policy)
    target = read_target(raw)
    if isinstance(target, errors.OAuthError):
        return refuse(target, resource.policy)
    refused = check_cert_headers(request, runtime.read_policy)
    if refused is not None:
        return refuse(refused, resource.policy)
    return await run_check(resource_request(request, runtime, method, target.path), resource)


def _answer(verdict: Allowed | Denied, door: str, request: web.BaseRequest,
            request_id: str) -> web.Response:
    if isinstance(verdict, Denied):
        error = verdict.error
        if door == NGINX and error.status == 400:
            error = dataclasses.replace(error, status=401)
        return error_response(error, request_id)
    response = web.Response(status=200, headers={"X-Request-Id": request_id})
    response.headers["Authorization"] = f"Bearer {verdict.token}"
    for name, value in verdict.context():
        response.headers[CONTEXT_PREFIX + name] = value
    # The client's own X-Token-* that no header above overrides (Envoy's
    # allowed_upstream_headers replace the ones of the same name) are removed upstream.
    context, ours = fold(CONTEXT_PREFIX), {fold(name) for name in response.headers}
    forged = sorted({name.lower() for name in request.headers
                     if fold(name).startswith(context) and fold(name) not in ours})
    response.headers[REMOVE_HEADER] = ",".join(["dpop", *forged])
    return response
