"""The handlers: token endpoint, PAR endpoint and pass-through. Read, ask the core, then
forward or answer; no decisions are made here."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from sidecar import errors
from sidecar.core.answer import AnswerEdit, review_answer
from sidecar.core.decide import Env, decide, decide_par
from sidecar.errors import OAuthError
from sidecar.http.headers import request_headers_for_upstream
from sidecar.http.parse import read_token_request
from sidecar.http.proxy import AnswerWith, UpstreamAnswer
from sidecar.http.render import NO_STORE_HEADERS, error_response
from sidecar.http.runtime import CONTEXT_PREFIX, RUNTIME, Runtime
from sidecar.model import Decision, Forward, Respond, Summary, TokenRequest

log = logging.getLogger("token_sidecar.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# RFC 9449 §8 and §7.1 notes: a browser client must be able to read these.
_EXPOSED_TO_BROWSERS = ("DPoP-Nonce", "WWW-Authenticate")

Decider = Callable[[TokenRequest, Env], Awaitable[Decision]]


def request_id_of(request: web.BaseRequest) -> str:
    sent = request.headers.get("X-Request-Id", "")
    return sent if _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _is_cors_preflight(request: web.BaseRequest) -> bool:
    # A browser's CORS preflight belongs to the upstream, which owns the CORS policy.
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


async def token_endpoint(request: web.Request) -> web.StreamResponse:
    return await _handle(request, decide)


async def par_endpoint(request: web.Request) -> web.StreamResponse:
    return await _handle(request, decide_par)


async def _handle(request: web.Request, decider: Decider) -> web.StreamResponse:
    if _is_cors_preflight(request):
        return await passthrough(request)
    runtime = request.app[RUNTIME]
    started = time.perf_counter()
    request_id = request_id_of(request)
    decision, body = await _decide(request, runtime, decider)
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
    edit = await review_answer(decision, answer.status, answer.body, runtime.env)
    if edit.error is not None:
        _log(request_id, decision, edit.error.status, started, upstream_error=edit.error,
             upstream_status=answer.status, notes=edit.notes)
        return error_response(edit.error.with_headers(*edit.headers), request_id)
    _log(request_id, decision, answer.status, started, upstream_status=answer.status,
         notes=edit.notes)
    return _token_response(answer, edit, request_id)


async def _decide(request: web.Request, runtime: Runtime,
                  decider: Decider) -> tuple[Decision, bytes]:
    """The decision, and the body to forward with it."""
    if request.method != "POST":
        return _refuse(errors.method_not_allowed("request.method_not_allowed",
                                                 "This endpoint only accepts POST.")), b""
    token_request = await read_token_request(request, runtime.read_policy)
    if isinstance(token_request, OAuthError):
        return _refuse(token_request), b""
    return await decider(token_request, runtime.env), token_request.body


def _refuse(error: OAuthError) -> Respond:
    return Respond(error, Summary(error.result_code, error.description))


def _context_headers(request: web.BaseRequest, runtime: Runtime, decision: Forward,
                     request_id: str) -> CIMultiDict[str]:
    headers = _upstream_headers(request, runtime, request_id)
    for name, value in decision.context:
        headers[CONTEXT_PREFIX + name] = value
    return headers


def _token_response(answer: UpstreamAnswer, edit: AnswerEdit, request_id: str) -> web.Response:
    headers = answer.headers
    # RFC 6749 §5.1: token responses carry Cache-Control: no-store and Pragma: no-cache,
    # whatever the upstream remembered to send.
    for name, value in (*NO_STORE_HEADERS, *edit.headers):
        headers[name] = value
    headers["X-Request-Id"] = request_id
    if "Access-Control-Allow-Origin" in headers:
        _expose_to_browsers(headers)
    body = answer.body if edit.body is None else edit.body
    return web.Response(status=answer.status, body=body, headers=headers)


def _expose_to_browsers(headers: CIMultiDict[str]) -> None:
    exposed = [h.strip() for v in headers.getall("Access-Control-Expose-Headers", ())
               for h in v.split(",") if h.strip()]
    known = {h.lower() for h in exposed}
    if "*" in known:
        return
    exposed += [h for h in _EXPOSED_TO_BROWSERS if h.lower() not in known]
    headers["Access-Control-Expose-Headers"] = ", ".join(exposed)


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
         upstream_status: int | None = None, upstream_error: OAuthError | None = None,
         notes: tuple[str, ...] = ()) -> None:
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
            "notes": ",".join(notes),
        }},
    )
