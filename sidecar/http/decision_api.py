"""The decision API's listener (`server.api_listen`, README "Calling instead of proxying").

A door, not a second implementation: `/api/auth/token` reads the call, turns it into the
`TokenRequest` the proxy would have read, and asks the same `decide`, with the same store,
clock and policy as the token listener (so one DPoP proof sent to both doors is accepted once:
the replay check is the same atomic `SET NX`). This module only reads, checks the caller's key
and answers.

Access: `Authorization: Bearer <key>`, one of the keys of `api.key_file` (one a line, the way
nonce secrets rotate), compared in constant time. No field value is ever logged.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

from sidecar import fast_json
from sidecar.core.decide import decide
from sidecar.core.decision_api import introspection_call as introspection
from sidecar.core.decision_api.fields import FieldError, Fields, parse_object
from sidecar.core.decision_api.token_answer import token_answer
from sidecar.core.decision_api.token_call import (
    FIELDS,
    policy_for_call,
    read_token_call,
    token_request_of,
)
from sidecar.core.policy import Policy
from sidecar.errors import OAuthError
from sidecar.http.resource_check import record, run_check
from sidecar.http.runtime import STATE, TOKEN_APP, SidecarState
from sidecar.http.token import request_id_of
from sidecar.logs import FIELDS_ATTRIBUTE
from sidecar.model import Respond
from sidecar.settings import ConfigError, Settings, read_secret_lines

log = logging.getLogger("token_sidecar.api")

MAX_BODY: Final = web.AppKey("api_max_body_bytes", int)
OPENAPI: Final = web.AppKey("api_openapi_document", bytes)
OPENAPI_RESOURCE: Final = "decision-api.openapi.json"
_JSON: Final = "application/json"


class ApiKeys:
    """The keys a caller may present. Every key is compared, whichever matches, so the time
    an answer takes says nothing about which key (or how much of one) was right."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        if not keys:
            raise ValueError("the decision API needs at least one key")
        self._keys = tuple(key.encode("utf-8") for key in keys)

    def admits(self, authorization: str | None) -> bool:
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":  # RFC 6750 §2.1; the scheme is case-insensitive
            return False
        candidate = presented.strip().encode("utf-8", "surrogatepass")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(key, candidate)
        return found

    def __repr__(self) -> str:
        return f"ApiKeys(count={len(self._keys)})"


KEYS: Final = web.AppKey("api_keys", ApiKeys)


def api_keys_of(settings: Settings) -> ApiKeys | None:
    """The keys of `api.key_file` when `server.api_listen` is set (None when it is not).
    Raises ConfigError when the file cannot be read or holds no usable key: the API never
    listens without one."""
    if not settings.server.api_listen:
        return None
    try:
        return ApiKeys(read_secret_lines(settings.api.key_file))
    except OSError as exc:
        raise ConfigError([f"api.key_file: cannot read {settings.api.key_file}: "
                           f"{exc.strerror}"]) from exc


def build_api_app(token_app: web.Application, keys: ApiKeys,
                  max_body_bytes: int) -> web.Application:
    """The API application, sharing the token application's state (policy, store, clock)."""
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_bearer_key])
    app[TOKEN_APP] = token_app
    app[KEYS] = keys
    app[MAX_BODY] = max_body_bytes
    app[OPENAPI] = openapi_text().encode("utf-8")  # read once, served as it is
    app.router.add_post("/api/auth/token", token_call)
    app.router.add_post("/api/auth/introspection", introspection_call)
    app.router.add_get("/api/openapi.json", openapi_document)
    return app


def openapi_text() -> str:
    return resources.files("sidecar").joinpath(OPENAPI_RESOURCE).read_text(encoding="utf-8")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _bearer_key(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/api/openapi.json" or request.app[KEYS].admits(
            request.headers.get("Authorization")):
        return await handler(request)
    response = _problem(401, "api.unauthorized",
                        "A valid API key is required: Authorization: Bearer <key>.").response
    response.headers["WWW-Authenticate"] = 'Bearer realm="token-sidecar-api"'
    return response


async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type=_JSON)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """An answer, and what the log line and the metrics say of it."""

    response: web.Response
    result_code: str
    action: str = ""  # "" for a call refused before a decision (key, body, field)


def _problem(status: int, result_code: str, message: str) -> _Outcome:
    """An answer about the call itself (not a decision): the key, the body, a field."""
    body = {"resultCode": result_code, "resultMessage": message}
    response = web.json_response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    return _Outcome(response, result_code)


async def _read_members(request: web.Request) -> dict[str, object] | _Outcome:
    if request.content_type != _JSON:
        return _problem(415, "api.unsupported_media_type", "The body must be application/json.")
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        return _problem(413, "api.body_too_large", f"The body is larger than {limit} bytes.")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _problem(413, "api.body_too_large", f"The body is larger than {limit} bytes.")
    members = parse_object(body)
    if isinstance(members, FieldError):
        return _problem(400, "api.bad_json", members.message)
    return members


async def token_call(request: web.Request) -> web.Response:
    started = time.perf_counter()
    state: SidecarState = request.app[TOKEN_APP][STATE]
    outcome = await _token_outcome(request, state)
    _finish(outcome, request, started, endpoint="token")
    state.metrics.child(state.metrics.api_token_calls, outcome.action,
                        outcome.result_code).inc()
    return outcome.response


async def _token_outcome(request: web.Request, state: SidecarState) -> _Outcome:
    members = await _read_members(request)
    if isinstance(members, _Outcome):
        return members
    runtime = state.runtime
    assert runtime is not None  # set before the token site (and this one) starts listening
    call = read_token_call(Fields(members, FIELDS))
    policy = call if isinstance(call, FieldError) else policy_for_call(runtime.env.policy, call)
    if isinstance(policy, FieldError):
        return _problem(400, "api.bad_field", policy.message)
    assert not isinstance(call, FieldError)
    now = runtime.env.clock.now()
    token_request = token_request_of(call)
    if isinstance(token_request, OAuthError):  # the form itself: nothing to decide
        return _answered(token_answer(Respond.before_decision(token_request), call, None,
                                      _nonce(token_request, policy, now)))
    if (shed := await state.admission.enter()) is not None:  # the token listener's bounds
        return _problem(503, shed.result_code, shed.description)
    try:
        decision = await decide(token_request, dataclasses.replace(runtime.env, policy=policy))
    finally:
        state.admission.leave()
    error = decision.error if isinstance(decision, Respond) else None
    return _answered(token_answer(decision, call, token_request.parameters,
                                  _nonce(error, policy, now)))


def _nonce(error: OAuthError | None, policy: Policy, now: float) -> str | None:
    """The DPoP-Nonce to hand on (RFC 9449 §8): the one a `use_dpop_nonce` refusal already
    carries, else a fresh one whenever nonces are on."""
    for name, value in error.headers if error is not None else ():
        if name == "DPoP-Nonce":
            return value
    return policy.nonces.issue(now) if policy.nonces is not None else None


async def introspection_call(request: web.Request) -> web.Response:
    """The resource-side check as a call: the verdict the inline door and the check
    listener give, counted and logged as theirs are (door "api")."""
    started = time.perf_counter()
    state: SidecarState = request.app[TOKEN_APP][STATE]
    members = await _read_members(request)
    runtime = state.runtime
    if isinstance(members, _Outcome):
        refused = members
    elif runtime is None or runtime.resource is None:
        refused = _problem(404, "api.resource_side_off",
                           "The resource side is off (resource.enabled = false).")
    else:
        call = introspection.read_introspection_call(Fields(members, introspection.FIELDS))
        built = call if isinstance(call, FieldError) else introspection.resource_request_of(
            call, runtime.resource.policy)
        if not isinstance(built, FieldError):
            resource_request, policy = built
            verdict = await run_check(resource_request,
                                      dataclasses.replace(runtime.resource, policy=policy))
            outcome = _answered(introspection.introspection_answer(verdict))
            request_id = request_id_of(request)
            outcome.response.headers["X-Request-Id"] = request_id
            # The check's own line and count, as at the other doors.
            record(verdict, door="api", request_id=request_id,
                   status=outcome.response.status, started=started, metrics=state.metrics)
            return outcome.response
        refused = _problem(400, "api.bad_field", built.message)
    _finish(refused, request, started, endpoint="introspection")
    return refused.response


def _answered(answer: dict[str, object]) -> _Outcome:
    response = web.Response(body=fast_json.dumps(answer), content_type=_JSON)
    response.headers["Cache-Control"] = "no-store"
    return _Outcome(response, str(answer["resultCode"]), str(answer["action"]))


def _finish(outcome: _Outcome, request: web.Request, started: float, *, endpoint: str) -> None:
    """The request id on the answer, and one log line per call: what was decided, never a
    field's value."""
    request_id = request_id_of(request)
    response = outcome.response
    response.headers["X-Request-Id"] = request_id
    log.info("api %s %s", outcome.action or response.status, outcome.result_code,
             extra={FIELDS_ATTRIBUTE: {
                 "request_id": request_id, "endpoint": endpoint, "action": outcome.action,
                 "result_code": outcome.result_code, "status": response.status,
                 "duration_seconds": round(time.perf_counter() - started, 6)}})
