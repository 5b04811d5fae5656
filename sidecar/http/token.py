"""The handlers: token endpoint, PAR endpoint and pass-through. Read, ask the core, then
forward or answer; no decisions are made here."""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from multidict import CIMultiDict

from sidecar import errors
from sidecar.core.attestation.challenges import challenge_endpoint
from sidecar.core.attestation.challenges import response_headers as attestation_headers
from sidecar.core.attestation.config import AttestationPolicy
from sidecar.core.metadata import is_metadata_path
from sidecar.core.query import check_query
from sidecar.core.target import INTROSPECTION, PAR, REVOCATION, TOKEN, Target, read_target
from sidecar.core.upstream_answer import AnswerEdit
from sidecar.errors import OAuthError
from sidecar.http.headers import request_headers_for_upstream
from sidecar.http.introspection import introspect, revoke
from sidecar.http.metadata import metadata
from sidecar.http.parse import check_cert_headers, read_token_request
from sidecar.http.proxy import AnswerWith, Outbound, UpstreamAnswer
from sidecar.http.render import NO_STORE_HEADERS, error_response
from sidecar.http.runtime import CONTEXT_PREFIX, STATE, Runtime, SidecarState
from sidecar.http.token_record import TokenRecord
from sidecar.logs import FIELDS_ATTRIBUTE
from sidecar.model import Action, Decision, Forward, Respond, TokenRequest

log = logging.getLogger("token_sidecar.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
# RFC 9449 §8 and §7.1 notes: a browser client must be able to read these.
_EXPOSED_TO_BROWSERS = ("DPoP-Nonce", "WWW-Authenticate", "OAuth-Client-Attestation-Challenge")

Decider = Callable[[TokenRequest], Awaitable[Decision]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TARGET = web.RequestKey("target", Target)
BoundTokenHandler = Callable[[web.Request, Runtime, Outbound], Awaitable[web.Response]]


# A random per-process prefix and a counter: unique across replicas, cheaper than uuid4.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()


def request_id_of(request: web.BaseRequest) -> str:
    sent = request.headers.get("X-Request-Id", "")
    return sent if _REQUEST_ID.fullmatch(sent) else f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def is_cors_preflight(request: web.BaseRequest) -> bool:
    # A browser's CORS preflight belongs to the upstream, which owns the CORS policy.
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


async def checked_target(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request's target is read first (sidecar/core/target.py), before anything is
    checked or a single-use value spent: the one route's handler (sidecar/http/app.py)
    begins here, for every target, '*' and 'host:port' ones too (sidecar/http/routing.py)."""
    target = read_target(request.raw_path)
    if isinstance(target, OAuthError):
        return _refuse_target(request, target)
    request[TARGET] = target
    return await handler(request)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route by the current settings: the token endpoint, the PAR endpoint, or through."""
    state = request.app[STATE]
    runtime = state.runtime
    assert runtime is not None  # set before the site starts listening
    if is_cors_preflight(request):
        return await passthrough(request, runtime)
    target = request[TARGET]
    guarded = runtime.guarded.route(target)
    if guarded is None:
        if runtime.settings.metadata.augment and request.method == "GET" \
                and is_metadata_path(target.path):
            return await _bound_tokens(request, runtime, metadata)
        return await passthrough(request, runtime)
    if isinstance(guarded, OAuthError):
        return _refuse_target(request, guarded)
    if guarded.name == TOKEN:
        return await _handle(request, state, runtime, runtime.decide_token)
    if guarded.name == PAR:
        return await _handle(request, state, runtime, runtime.decide_par)
    if guarded.name == INTROSPECTION:
        return await _bound_tokens(request, runtime, introspect)
    if guarded.name == REVOCATION:
        return await _bound_tokens(request, runtime, revoke)
    attestation = runtime.env.policy.attestation
    assert attestation is not None  # guarded only when challenges are on
    return _attestation_challenge(request, runtime, attestation)


def _refuse_target(request: web.Request, error: OAuthError) -> web.Response:
    """A request refused for its target: answered, counted and logged (never the target
    itself: it may carry a secret in its query)."""
    request_id = request_id_of(request)
    metrics = request.app[STATE].metrics
    metrics.child(metrics.targets_refused, error.result_code).inc()
    log.info("%s %s", Action.BAD_REQUEST.value, error.result_code, extra={FIELDS_ATTRIBUTE: {
        "request_id": request_id, "action": Action.BAD_REQUEST.value,
        "result_code": error.result_code, "message": error.description,
        "status": error.status, "detail": error.detail}})
    response = error_response(error, request_id)
    # What follows on this connection cannot be trusted to be read alike either (and a
    # CONNECT may have turned it into a tunnel): close it.
    response.force_close()
    return response


async def _bound_tokens(request: web.Request, runtime: Runtime,
                        handler: BoundTokenHandler) -> web.Response:
    """Introspection, revocation, metadata (README "Bound tokens"): answers the sidecar
    reads, to carry the bindings on."""
    request_id = request_id_of(request)
    return await handler(request, runtime, Outbound(
        request_id, _upstream_headers(request, runtime, request_id), request[TARGET]))


def _attestation_challenge(request: web.Request, runtime: Runtime,
                           policy: AttestationPolicy) -> web.Response:
    """The attestation draft's challenge endpoint: POST, {"attestation_challenge": ...}."""
    answer = challenge_endpoint(policy, runtime.env.clock.now(), method=request.method,
                                dpop_nonces=runtime.env.policy.nonces)
    response = web.json_response(answer.body, status=answer.status)
    for name, value in answer.headers:
        response.headers[name] = value
    response.headers["X-Request-Id"] = request_id_of(request)
    return response


async def _handle(request: web.Request, state: SidecarState, runtime: Runtime,
                  decider: Decider) -> web.StreamResponse:
    metrics = state.metrics
    record = TokenRecord(request_id_of(request), time.perf_counter(), metrics,
                     bool(request.headers.get("DPoP")), runtime.env.policy.registry)
    if (shed := await state.admission.enter()) is not None:  # sidecar/http/admission.py
        response = error_response(shed, record.request_id)
        record.done(Respond.before_decision(shed), response)
        return response
    metrics.in_flight.inc()
    try:
        return await _answer(request, runtime, decider, record)
    finally:
        metrics.in_flight.dec()
        state.admission.leave()


async def _answer(request: web.Request, runtime: Runtime, decider: Decider,
                  record: TokenRecord) -> web.StreamResponse:
    response = await _answer_token(request, runtime, decider, record)
    # The attestation draft: a fresh challenge on every token-endpoint answer, when on.
    for name, value in attestation_headers(runtime.env.policy.attestation,
                                           runtime.env.clock.now()):
        if name not in response.headers:
            response.headers[name] = value
    return response


async def _answer_token(request: web.Request, runtime: Runtime, decider: Decider,
                        record: TokenRecord) -> web.StreamResponse:
    request_id = record.request_id
    decision, body = await _decide(request, runtime, decider)
    if isinstance(decision, Respond):
        response = error_response(decision.error, request_id)
        if decision.error.status == 405:
            response.headers["Allow"] = "POST"
        record.done(decision, response)
        return response
    upstream_started = time.perf_counter()
    answer = await runtime.upstream.send_token(
        request, request[TARGET], _context_headers(request, runtime, decision, request_id), body)
    if isinstance(answer, OAuthError):
        response = error_response(answer, request_id)
        record.done(decision, response, failure=answer)
        return response
    record.metrics.observe_upstream(answer.status, time.perf_counter() - upstream_started)
    edit = await runtime.review_answer(decision, answer.status, answer.body)
    if edit.error is not None:
        response = error_response(edit.error.with_headers(*edit.headers), request_id)
    else:
        response = _token_response(answer, edit, request_id)
    record.done(decision, response, failure=edit.error, upstream_status=answer.status,
                edit=edit)
    return response


async def _decide(request: web.Request, runtime: Runtime,
                  decider: Decider) -> tuple[Decision, bytes]:
    """The decision, and the body to forward with it."""
    if request.method != "POST":
        return Respond.before_decision(errors.method_not_allowed(
            "request.method_not_allowed", "This endpoint only accepts POST.")), b""
    query_error = check_query(request[TARGET].query, runtime.token_query_allowed)
    if query_error is not None:
        return Respond.before_decision(query_error), b""
    token_request = await read_token_request(request, runtime.read_policy)
    if isinstance(token_request, OAuthError):
        return Respond.before_decision(token_request), b""
    return await decider(token_request), token_request.body


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
    headers = request_headers_for_upstream(request.headers, runtime.forward_rules,
                                           trusted=trusted, peer=request.remote)
    if runtime.settings.upstream.preserve_host and request.host:
        headers["Host"] = request.host
    headers["X-Request-Id"] = request_id
    return headers


async def passthrough(request: web.Request, runtime: Runtime) -> web.StreamResponse:
    request_id = request_id_of(request)
    refused = check_cert_headers(request, runtime.read_policy)
    if refused is not None:
        return error_response(refused, request_id)
    headers = _upstream_headers(request, runtime, request_id)
    try:
        return await runtime.upstream.stream(request, request[TARGET], headers)
    except AnswerWith as answer:
        return error_response(answer.error, request_id)
