"""Introspection (RFC 7662) and revocation (RFC 7009) through the sidecar (README "Bound
tokens"): read strictly, forwarded unchanged, the answer given the binding's `cnf`; a
successful revocation deletes the binding. The decisions are in `sidecar.core.introspection`.

The resource server authenticates to the upstream as it always did: its credentials pass
through untouched, and the sidecar adds nothing the upstream would read as context.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from sidecar import errors
from sidecar.core.access_binding import ACCESS_BINDING, decode_binding
from sidecar.core.form import parse_form
from sidecar.core.introspection import (
    IntrospectionEdit,
    add_binding,
    is_active_json,
    revoked_by_owner,
    token_parameter,
)
from sidecar.core.query import check_query
from sidecar.core.store_failures import store_call
from sidecar.errors import OAuthError
from sidecar.http.metrics import Metrics
from sidecar.http.parse import (
    check_cert_headers,
    check_content_encoding,
    check_content_type,
    read_body,
)
from sidecar.http.proxy import Outbound, UpstreamAnswer
from sidecar.http.render import error_response
from sidecar.http.runtime import STATE, Runtime
from sidecar.logs import FIELDS_ATTRIBUTE
from sidecar.model import FormParams

log = logging.getLogger("token_sidecar.access")


@dataclass(frozen=True, slots=True)
class Read:
    """An introspection or revocation request as read: its token, what identifies the caller,
    and the body to forward unchanged."""

    token: str
    params: FormParams
    authorization: str | None
    body: bytes

    def __repr__(self) -> str:  # the token and the caller's credentials are secrets
        return "Read(...)"


Review = Callable[[Read, UpstreamAnswer, Runtime, Metrics],
                  Awaitable["IntrospectionEdit | OAuthError"]]


async def introspect(request: web.Request, runtime: Runtime, outbound: Outbound) -> web.Response:
    return await _relay(request, runtime, outbound, "introspection", _review_introspection)


async def revoke(request: web.Request, runtime: Runtime, outbound: Outbound) -> web.Response:
    return await _relay(request, runtime, outbound, "revocation", _after_revocation)


async def _relay(request: web.Request, runtime: Runtime, outbound: Outbound, endpoint: str,
                 review: Review) -> web.Response:
    started = time.perf_counter()
    request_id = outbound.request_id
    read = await _read(request, runtime, outbound)
    if isinstance(read, OAuthError):
        return _done(endpoint, request_id, started, error_response(read, request_id), read)
    answer = await runtime.upstream.send_token(request, outbound.target, outbound.headers,
                                               read.body)
    if isinstance(answer, OAuthError):
        return _done(endpoint, request_id, started, error_response(answer, request_id), answer)
    edit = await review(read, answer, runtime, request.app[STATE].metrics)
    if isinstance(edit, OAuthError):
        return _done(endpoint, request_id, started, error_response(edit, request_id), edit)
    headers = answer.headers
    headers["X-Request-Id"] = request_id
    response = web.Response(status=answer.status, headers=headers,
                            body=answer.body if edit.body is None else edit.body)
    return _done(endpoint, request_id, started, response, None, notes=edit.notes,
                 upstream_status=answer.status)


async def _read(request: web.Request, runtime: Runtime, outbound: Outbound) -> Read | OAuthError:
    """RFC 7662 §2.1, RFC 7009 §2.1: POST, a form body, one `token`; no OAuth parameter in
    the query, where an upstream that reads the query first would find it (README
    "Security")."""
    if request.method != "POST":
        return errors.method_not_allowed("request.method_not_allowed",
                                         "This endpoint only accepts POST.").with_headers(
                                             ("Allow", "POST"))
    query_error = check_query(outbound.target.query, runtime.token_query_allowed)
    if query_error is not None:
        return query_error
    error = check_cert_headers(request, runtime.read_policy) or check_content_type(request) \
        or check_content_encoding(request)
    if error is not None:
        return error
    body = await read_body(request, runtime.read_policy.max_body_bytes)
    if isinstance(body, OAuthError):
        return body
    params = parse_form(body)
    if isinstance(params, OAuthError):
        return params
    token = token_parameter(params)
    if isinstance(token, OAuthError):
        return token
    authorizations = request.headers.getall("Authorization", ())
    if len(authorizations) > 1:
        return errors.invalid_request("request.multiple_authorization",
                                      "More than one Authorization header was sent.")
    return Read(token, params, authorizations[0] if authorizations else None, body)


async def _review_introspection(read: Read, answer: UpstreamAnswer, runtime: Runtime,
                                metrics: Metrics) -> IntrospectionEdit | OAuthError:
    active = is_active_json(answer.status, _media_type(answer), answer.body)
    if active is None:
        return _counted(metrics, IntrospectionEdit(notes=("introspection.passed",)))
    env = runtime.env
    outcome = await store_call(env.store.get_binding(ACCESS_BINDING, read.token), env.policy.store)
    if isinstance(outcome, OAuthError):
        # Closed: a bearer answer for a bound token would silently unbind it.
        metrics.child(metrics.introspections, "store_unavailable").inc()
        return outcome
    if outcome.skipped:
        return _counted(metrics, IntrospectionEdit(notes=("binding_lookup.skipped",)))
    binding = decode_binding(outcome.value)
    if binding is None:
        return _counted(metrics, IntrospectionEdit(notes=("binding.none",)))
    edit = add_binding(active, binding)
    if any(note.endswith(".conflict") for note in edit.notes):
        log.warning("introspection: the upstream's answer disagrees with the recorded binding",
                    extra={FIELDS_ATTRIBUTE: {"notes": ",".join(edit.notes)}})
    return _counted(metrics, edit)


def _counted(metrics: Metrics, edit: IntrospectionEdit) -> IntrospectionEdit:
    for note in edit.notes:
        metrics.child(metrics.introspections, note.replace(".", "_")).inc()
    return edit


async def _after_revocation(read: Read, answer: UpstreamAnswer, runtime: Runtime,
                            metrics: Metrics) -> IntrospectionEdit | OAuthError:
    """RFC 7009 §2.2: a 200 means the token is invalid now, if the caller was allowed to
    revoke it; the access-token binding goes with it. A 200 is also the answer to a client
    that may not revoke the token (§2.1: the server answers 200 and keeps it; DOT does), so
    the binding is deleted only when the caller is the client it was issued to: otherwise any
    client could strip another's binding and make its token a bearer token. Refresh-token
    bindings stay until they expire (a revoked token's binding binds nothing). The upstream
    has answered already, so a store failure here is logged, not answered."""
    if answer.status != 200:
        return IntrospectionEdit(notes=("revocation.refused",))
    env = runtime.env
    found = await store_call(env.store.get_binding(ACCESS_BINDING, read.token), env.policy.store)
    if isinstance(found, OAuthError) or found.skipped:
        return _delete_failed()
    binding = decode_binding(found.value)
    if binding is None:
        return IntrospectionEdit(notes=("binding.none",))
    if not revoked_by_owner(binding, read.authorization, read.params):
        return IntrospectionEdit(notes=("binding.kept_not_owner",))
    deleted = await store_call(env.store.delete_binding(ACCESS_BINDING, read.token),
                               env.policy.store)
    if isinstance(deleted, OAuthError) or deleted.skipped:
        return _delete_failed()
    metrics.child(metrics.access_bindings, "deleted").inc()
    return IntrospectionEdit(notes=("binding.deleted",))


def _delete_failed() -> IntrospectionEdit:
    log.warning("revocation: the access-token binding could not be deleted")
    return IntrospectionEdit(notes=("binding.delete_failed",))


def _media_type(answer: UpstreamAnswer) -> str:
    return answer.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def _done(endpoint: str, request_id: str, started: float, response: web.Response,
          failure: OAuthError | None, *, notes: tuple[str, ...] = (),
          upstream_status: int | None = None) -> web.Response:
    log.info("%s %s", endpoint, failure.result_code if failure else "relayed",
             extra={FIELDS_ATTRIBUTE: {
                 "request_id": request_id,
                 "endpoint": endpoint,
                 "result_code": failure.result_code if failure else f"{endpoint}.relayed",
                 "status": response.status,
                 "upstream_status": upstream_status,
                 "duration_seconds": round(time.perf_counter() - started, 6),
                 "detail": failure.detail if failure else "",
                 "notes": ",".join(notes),
             }})
    return response
