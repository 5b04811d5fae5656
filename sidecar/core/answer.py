"""What the sidecar enforces on the upstream's answer to a forwarded token request (README
"What one token request goes through", step 5).

Pure like the decision: the shell hands over the status and body, and applies the edit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from sidecar import errors, fast_json
from sidecar.core.access_binding import ACCESS_BINDING, binding_for_answer
from sidecar.core.binding import REFRESH_BINDING
from sidecar.core.steps import Env
from sidecar.core.store_calls import store_call
from sidecar.errors import OAuthError
from sidecar.model import Forward


@dataclass(frozen=True, slots=True)
class AnswerEdit:
    body: bytes | None = None  # a replacement body, when one was rewritten
    headers: tuple[tuple[str, str], ...] = ()
    error: OAuthError | None = None  # answer this instead of the upstream's answer
    notes: tuple[str, ...] = ()  # what happened, for logs and metrics


async def review_answer(forward: Forward, status: int, body: bytes, env: Env) -> AnswerEdit:
    headers = _nonce_headers(env)
    if not 200 <= status < 300 or not (forward.proves_possession
                                       or forward.bind_refresh_token_to):
        return AnswerEdit(headers=headers)
    token = _json_object(body)
    if token is None:
        return AnswerEdit(headers=headers)
    notes: list[str] = []
    # Both bindings are written together: on Redis they go out in the same pipeline.
    access, refresh = await asyncio.gather(
        _bind_access_token(token, forward, env, notes),
        _bind_refresh_token(token, forward.bind_refresh_token_to, env, notes))
    for outcome in (access, refresh):
        if isinstance(outcome, OAuthError):
            # Closed: a token whose binding could not be recorded is not handed out unbound.
            return AnswerEdit(error=outcome, headers=headers, notes=tuple(notes))
    new_body: bytes | None = None
    if forward.dpop_jkt:
        rewritten = _enforce_dpop_token_type(token, env, notes, bound=access is True)
        if isinstance(rewritten, OAuthError):
            return AnswerEdit(error=rewritten, headers=headers, notes=tuple(notes))
        new_body = rewritten
    return AnswerEdit(body=new_body, headers=headers, notes=tuple(notes))


def _nonce_headers(env: Env) -> tuple[tuple[str, str], ...]:
    # RFC 9449 §8.2: the server may hand out a fresh nonce with any response.
    nonces = env.policy.nonces
    return (("DPoP-Nonce", nonces.issue(env.clock.now())),) if nonces else ()


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = fast_json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _enforce_dpop_token_type(token: dict[str, Any], env: Env, notes: list[str], *,
                             bound: bool) -> bytes | OAuthError | None:
    """RFC 9449 §5: a DPoP-bound access token is issued with `token_type` DPoP. The client is
    told DPoP only when the token is bound: by the upstream (it said DPoP) or by the binding
    just recorded. An unbound Bearer answer is passed as it is, and counted."""
    token_type = token.get("token_type")
    if "access_token" not in token or (isinstance(token_type, str)
                                       and token_type.lower() == "dpop"):
        return None
    mode = env.policy.upstream_token_type
    if mode == "require":
        notes.append("upstream_token_type.require")
        return errors.bad_gateway(
            "upstream.token_type_not_dpop",
            "The token endpoint did not issue a DPoP-bound token.",
            detail=f"token_type={str(token_type)[:20]!r}")
    if mode == "rewrite" and bound:
        notes.append("upstream_token_type.rewrite")
        token["token_type"] = "DPoP"  # noqa: S105 - a token type, not a secret
        return fast_json.dumps(token)
    # pass, or rewrite with no binding recorded (the store failed open): never claim DPoP.
    notes.append("upstream_token_type.pass" if mode == "pass" else "upstream_token_type.unbound")
    return None


async def _bind_access_token(token: dict[str, Any], forward: Forward, env: Env,
                             notes: list[str]) -> bool | OAuthError:
    """True when a binding was recorded for the answer's access token."""
    if not forward.proves_possession:
        return False
    found = binding_for_answer(
        token, jkt=forward.dpop_jkt, x5t_s256=forward.cert_s256,
        client_id=forward.summary.client_id, requested_scope=forward.requested_scope,
        now=env.clock.now(), default_ttl_seconds=env.policy.access_binding_ttl_seconds)
    if found is None:
        return False
    access_token, binding, ttl = found
    outcome = await store_call(
        env.store.set_binding(ACCESS_BINDING, access_token, binding.encode(), ttl), env.policy)
    if isinstance(outcome, OAuthError):
        return outcome
    notes.append("access_binding.skipped" if outcome.skipped else "access_binding.recorded")
    return not outcome.skipped


async def _bind_refresh_token(token: dict[str, Any], bound_to: str | None, env: Env,
                              notes: list[str]) -> bool | OAuthError:
    refresh_token = token.get("refresh_token")
    if not bound_to or not isinstance(refresh_token, str) or not refresh_token:
        return False
    ttl = token.get("refresh_token_expires_in")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        ttl = env.policy.refresh_binding_ttl_seconds
    outcome = await store_call(
        env.store.set_binding(REFRESH_BINDING, refresh_token, bound_to, ttl), env.policy)
    if isinstance(outcome, OAuthError):
        return outcome
    notes.append("refresh_binding.skipped" if outcome.skipped else "refresh_binding.recorded")
    return not outcome.skipped
