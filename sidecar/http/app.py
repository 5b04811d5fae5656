"""The aiohttp shell: read, ask the core, then forward or answer. No decisions are made here."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

from sidecar import errors
from sidecar.adapters import open_store
from sidecar.core.decide import Env, Policy, decide
from sidecar.errors import OAuthError
from sidecar.http.headers import request_headers_for_upstream
from sidecar.http.parse import ReadPolicy, read_token_request
from sidecar.http.proxy import AnswerWith, Upstream, UpstreamAnswer, open_session
from sidecar.http.render import NO_STORE_HEADERS, error_response
from sidecar.model import Decision, Forward, Respond, Summary
from sidecar.ports import Clock, ReplayStore, SystemClock
from sidecar.settings import Settings

log = logging.getLogger("token_sidecar.access")

CONTEXT_PREFIX = "X-Token-"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a handler needs, built once per application."""

    settings: Settings
    read_policy: ReadPolicy
    env: Env
    upstream: Upstream
    stripped_headers: tuple[str, ...]  # certificate headers, dropped from untrusted peers


SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", ReplayStore)
CLOCK = web.AppKey("clock", Clock)


def build_app(
    settings: Settings, *, store: ReplayStore | None = None, clock: Clock | None = None
) -> web.Application:
    app = web.Application(client_max_size=settings.server.max_body_bytes)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    if store is not None:
        app[STORE] = store
    app.cleanup_ctx.append(_runtime)
    token_path = settings.server.token_path
    app.router.add_route("*", token_path, token_endpoint)
    app.router.add_route("*", "/{tail:.*}", passthrough)
    return app


async def _runtime(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    owns_store = STORE not in app
    store = app[STORE] if not owns_store else open_store(settings.store, app[CLOCK])
    session = open_session(settings.upstream)
    trust = settings.trust
    app[RUNTIME] = Runtime(
        settings=settings,
        read_policy=ReadPolicy.from_settings(settings),
        env=Env(Policy.from_settings(settings), store, app[CLOCK]),
        upstream=Upstream(session, settings.upstream),
        stripped_headers=tuple(h for h in (trust.client_cert_header,
                                           trust.client_cert_chain_header) if h),
    )
    yield
    await session.close()
    if owns_store:
        await store.close()


def request_id_of(request: web.BaseRequest) -> str:
    sent = request.headers.get("X-Request-Id", "")
    return sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _is_cors_preflight(request: web.BaseRequest) -> bool:
    # A browser's CORS preflight belongs to the upstream, which owns the CORS policy.
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    if _is_cors_preflight(request):
        return await passthrough(request)
    runtime = request.app[RUNTIME]
    started = time.perf_counter()
    request_id = request_id_of(request)
    decision, body = await _decide(request, runtime)
    if isinstance(decision, Respond):
        response = error_response(decision.error, request_id)
        if decision.error.status == 405:
            response.headers["Allow"] = "POST"
        _log(request_id, decision, response.status, started)
        return response
    answer = await runtime.upstream.send_token(
        request, _context_headers(request, runtime, decision, request_id), body)
    if isinstance(answer, OAuthError):
        _log(request_id, decision, answer.status, started, upstream_error=answer)
        return error_response(answer, request_id)
    _log(request_id, decision, answer.status, started, upstream_status=answer.status)
    return _token_response(answer, request_id)


async def _decide(request: web.Request, runtime: Runtime) -> tuple[Decision, bytes]:
    """The decision, and the body to forward with it."""
    if request.method != "POST":
        return _refuse(errors.method_not_allowed("request.method_not_allowed",
                                                 "The token endpoint only accepts POST.")), b""
    token_request = await read_token_request(request, runtime.read_policy)
    if isinstance(token_request, OAuthError):
        return _refuse(token_request), b""
    return await decide(token_request, runtime.env), token_request.body


def _refuse(error: OAuthError) -> Respond:
    return Respond(error, Summary(error.result_code, error.description))


def _context_headers(request: web.BaseRequest, runtime: Runtime, decision: Forward,
                     request_id: str) -> CIMultiDict[str]:
    headers = _upstream_headers(request, runtime, request_id)
    for name, value in decision.context:
        headers[CONTEXT_PREFIX + name] = value
    return headers


def _token_response(answer: UpstreamAnswer, request_id: str) -> web.Response:
    headers = answer.headers
    # RFC 6749 §5.1: token responses carry Cache-Control: no-store and Pragma: no-cache,
    # whatever the upstream remembered to send.
    for name, value in NO_STORE_HEADERS:
        headers[name] = value
    headers["X-Request-Id"] = request_id
    return web.Response(status=answer.status, body=answer.body, headers=headers)


def _upstream_headers(request: web.BaseRequest, runtime: Runtime,
                      request_id: str) -> CIMultiDict[str]:
    trusted = runtime.read_policy.is_trusted_peer(request.remote)
    headers = request_headers_for_upstream(
        request.headers, CONTEXT_PREFIX, () if trusted else runtime.stripped_headers)
    if runtime.settings.upstream.preserve_host and request.host:
        headers["Host"] = request.host
    headers["X-Request-Id"] = request_id
    return headers


async def passthrough(request: web.Request) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    request_id = request_id_of(request)
    headers = _upstream_headers(request, runtime, request_id)
    try:
        return await runtime.upstream.stream(request, headers)
    except AnswerWith as answer:
        return error_response(answer.error, request_id)


def _log(request_id: str, decision: Decision, status: int, started: float, *,
         upstream_status: int | None = None, upstream_error: OAuthError | None = None) -> None:
    summary = decision.summary
    failure = upstream_error or (decision.error if isinstance(decision, Respond) else None)
    log.info(
        "%s %s", decision.action.value, summary.result_code,
        extra={"token_sidecar": {
            "request_id": request_id,
            "action": decision.action.value,
            "result_code": upstream_error.result_code if upstream_error else summary.result_code,
            "grant_type": summary.grant_type,
            "client_id": summary.client_id,
            "auth_method": summary.auth_method,
            "status": status,
            "upstream_status": upstream_status,
            "duration_seconds": round(time.perf_counter() - started, 6),
            "detail": failure.detail if failure else "",
        }},
    )
