"""The inline door of the resource side (README "The resource side"): on the main listener,
requests under `resource.prefixes` are checked, then streamed to `resource.upstream_url`
the way the pass-through streams; `/.well-known/oauth-protected-resource` (RFC 9728) is
answered here. `inline_resource` runs in front of `dispatch` (sidecar/http/app.py), so
that the token endpoint's own handlers never see an API call.

What the API receives (RFC 9449 §7 leaves this to the deployment; Kong and APISIX do the
same): `Authorization: Bearer <token>`, so an API that reads only Bearer works unchanged;
no `DPoP` header; none of the client's own `X-Token-*` headers, in any spelling; the
`X-Token-*` context of the check where known.
"""

from __future__ import annotations

import dataclasses
import time

from aiohttp import web
from multidict import CIMultiDict

from sidecar.core.resource.check import Allowed, Denied, refuse
from sidecar.core.resource.metadata import METADATA_PATH
from sidecar.core.resource.request import ResourceRequest
from sidecar.http.headers import request_headers_for_upstream
from sidecar.http.parse import check_cert_headers, trusted_cert_headers
from sidecar.http.proxy import AnswerWith, StreamingUpstream
from sidecar.http.render import error_response
from sidecar.http.resource_check import ResourceRuntime, record, run_check
from sidecar.http.runtime import CONTEXT_PREFIX, STATE, Runtime
from sidecar.http.token import TARGET, Handler, is_cors_preflight, request_id_of

INLINE = "inline"


async def inline_resource(request: web.Request, handler: Handler) -> web.StreamResponse:
    runtime = request.app[STATE].runtime
    resource = runtime.resource if runtime is not None else None
    if runtime is None or resource is None:
        return await handler(request)
    target = request[TARGET]
    if target.path == METADATA_PATH and request.method in ("GET", "HEAD"):
        return _metadata(request, resource)
    if resource.upstream is None or not resource.guards(target.lenient):
        return await handler(request)
    if is_cors_preflight(request):
        # A browser's preflight carries no credentials (Fetch standard): the API's CORS
        # policy answers it. Anyone can send one, though: whatever credentials it carries
        # are unchecked, so they are not passed on either.
        headers = _api_headers(request, runtime)
        headers.popall("Authorization", None)
        headers.popall("DPoP", None)
        headers["X-Request-Id"] = request_id_of(request)
        return await _forward(request, resource.upstream, headers)
    return await _checked(request, runtime, resource, resource.upstream)


def _metadata(request: web.Request, resource: ResourceRuntime) -> web.Response:
    return web.Response(body=resource.metadata, content_type="application/json",
                        headers={"Cache-Control": "max-age=300",
                                 "X-Request-Id": request_id_of(request)})


def resource_request(request: web.BaseRequest, runtime: Runtime, method: str,
                     path: str) -> ResourceRequest:
    """The check's view of a request: `method` and `path` are the ones the client used
    (the doors rebuild them); the certificate header counts from trusted proxies only."""
    certificate, chain = trusted_cert_headers(request, runtime.read_policy)
    headers = request.headers
    return ResourceRequest(method=method, path=path,
                           authorization=tuple(headers.getall("Authorization", ())),
                           dpop=tuple(headers.getall("DPoP", ())),
                           client_cert_header=certificate, client_cert_chain_header=chain)


async def _checked(request: web.Request, runtime: Runtime, resource: ResourceRuntime,
                   upstream: StreamingUpstream) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request_id_of(request)
    metrics = request.app[STATE].metrics
    refused = check_cert_headers(request, runtime.read_policy)
    verdict = refuse(refused, resource.policy) if refused is not None else await run_check(
        resource_request(request, runtime, request.method, request[TARGET].path), resource)
    if isinstance(verdict, Denied):
        response: web.StreamResponse = error_response(verdict.error, request_id)
    else:
        headers = api_headers(_api_headers(request, runtime), verdict, request_id)
        response = await _forward(request, upstream, headers)
    record(verdict, door=INLINE, request_id=request_id, status=response.status,
           started=started, metrics=metrics)
    return response


def _api_headers(request: web.BaseRequest, runtime: Runtime) -> CIMultiDict[str]:
    trusted = runtime.read_policy.is_trusted_peer(request.remote)
    return request_headers_for_upstream(request.headers, runtime.forward_rules,
                                        trusted=trusted, peer=request.remote)


def api_headers(headers: CIMultiDict[str], allowed: Allowed,
                request_id: str) -> CIMultiDict[str]:
    """The client's headers as the pass-through forwards them (client `X-Token-*` already
    gone), the token as Bearer, the proof removed, the check's context added."""
    headers.popall("DPoP", None)
    headers["Authorization"] = f"Bearer {allowed.token}"
    for name, value in allowed.context():
        headers[CONTEXT_PREFIX + name] = value
    headers["X-Request-Id"] = request_id
    return headers


async def _forward(request: web.Request, upstream: StreamingUpstream,
                   headers: CIMultiDict[str]) -> web.StreamResponse:
    try:
        return await upstream.stream(request, request[TARGET], headers)
    except AnswerWith as answer:
        error = dataclasses.replace(answer.error, description=_API_FAILURES.get(
            answer.error.status, answer.error.description))
        return error_response(error, headers.get("X-Request-Id"))


_API_FAILURES = {502: "The API could not be reached.", 504: "The API did not answer in time."}
