"""What the sidecar enforces on the upstream's answer to a forwarded token request (README
"What one token request goes through", step 5).

Pure like the decision: the shell hands over the status and body, and applies the edit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Literal

from sidecar import errors, fast_json
from sidecar.core.access_binding import ACCESS_BINDING, binding_for_answer
from sidecar.core.binding import REFRESH_BINDING
from sidecar.core.policy import AnswerPolicy
from sidecar.core.steps import StepContext, StoreAccess
from sidecar.core.store_failures import store_call
from sidecar.errors import OAuthError
from sidecar.model import Forward
from sidecar.ports import Clock

BindingOutcome = Literal["recorded", "skipped"]  # skipped: the store down, failing open
_Written = BindingOutcome | OAuthError | None  # None: nothing to record
# RFC 9449 §5: what was done with an answer to a DPoP request whose token_type is not DPoP.
TokenTypeHandling = Literal["require", "rewrite", "pass", "unbound"]


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class AnswerEdit:
    body: Final[bytes | None] = None  # a replacement body, when one was rewritten
    headers: Final[tuple[tuple[str, str], ...]] = ()
    error: Final[OAuthError | None] = None  # answer this instead of the upstream's answer
    # What happened, for logs and metrics (None: nothing of the kind was done).
    access_binding: Final[BindingOutcome | None] = None
    refresh_binding: Final[BindingOutcome | None] = None
    token_type: Final[TokenTypeHandling | None] = None

    @property
    def notes(self) -> tuple[str, ...]:
        """The log line's `notes`: "access_binding.recorded", "upstream_token_type.rewrite"..."""
        return tuple(f"{name}.{value}" for name, value in (
            ("access_binding", self.access_binding), ("refresh_binding", self.refresh_binding),
            ("upstream_token_type", self.token_type)) if value is not None)


@dataclass(frozen=True, slots=True)
class AnswerReview:
    """The review of the upstream's answer, bound once to what it reads: the answer policy,
    the store the bindings are written to, the clock."""

    policy: AnswerPolicy
    store: StoreAccess
    clock: Clock

    @classmethod
    def of(cls, env: StepContext) -> AnswerReview:
        return cls(env.policy.answer, StoreAccess.of(env), env.clock)

    async def __call__(self, forward: Forward, status: int, body: bytes) -> AnswerEdit:
        policy = self.policy
        headers = _nonce_headers(policy, self.clock.now())
        if not 200 <= status < 300 or not (forward.proves_possession
                                           or forward.bind_refresh_token_to):
            return AnswerEdit(headers=headers)
        token = fast_json.loads_object(body)
        if token is None:
            return AnswerEdit(headers=headers)
        access, refresh = await self._bind(token, forward)
        for outcome in (access, refresh):
            if isinstance(outcome, OAuthError):
                # Closed: a token whose binding could not be recorded is not handed out unbound.
                return AnswerEdit(error=outcome, headers=headers, access_binding=_outcome(access),
                                  refresh_binding=_outcome(refresh))
        # One AnswerEdit made, not one then another by `dataclasses.replace` (3x the cost).
        edit = partial(AnswerEdit, headers=headers, access_binding=_outcome(access),
                       refresh_binding=_outcome(refresh))
        if not forward.dpop_jkt:
            return edit()
        handling, rewritten = _enforce_dpop_token_type(token, policy, bound=access == "recorded")
        if isinstance(rewritten, OAuthError):
            return edit(error=rewritten, token_type=handling)
        return edit(body=rewritten, token_type=handling)

    async def _bind(self, token: dict[str, Any],
                    forward: Forward) -> tuple[_Written, _Written]:
        bound_to = forward.bind_refresh_token_to
        refresh_token = _refresh_token_of(token)
        if not bound_to or refresh_token is None:
            # Fast path: one binding to write, awaited as it is (gather would wrap each
            # coroutine in a Task: about 8 µs a DPoP request in py-spy).
            return await _bind_access_token(token, forward, self), None
        # Both bindings are written together: on Redis they go out in the same pipeline.
        access, refresh = await asyncio.gather(
            _bind_access_token(token, forward, self),
            _bind_refresh_token(token, refresh_token, bound_to, self))
        return access, refresh


def _outcome(result: BindingOutcome | OAuthError | None) -> BindingOutcome | None:
    return None if isinstance(result, OAuthError) else result


def _nonce_headers(policy: AnswerPolicy, now: float) -> tuple[tuple[str, str], ...]:
    # RFC 9449 §8.2: the server may hand out a fresh nonce with any response.
    nonces = policy.nonces
    return (("DPoP-Nonce", nonces.issue(now)),) if nonces else ()


def _enforce_dpop_token_type(
        token: dict[str, Any], policy: AnswerPolicy, *, bound: bool,
) -> tuple[TokenTypeHandling | None, bytes | OAuthError | None]:
    """RFC 9449 §5: a DPoP-bound access token is issued with `token_type` DPoP. The client is
    told DPoP only when the token is bound: by the upstream (it said DPoP) or by the binding
    just recorded. An unbound Bearer answer is passed as it is, and counted."""
    token_type = token.get("token_type")
    if "access_token" not in token or (isinstance(token_type, str)
                                       and token_type.lower() == "dpop"):
        return None, None
    mode = policy.upstream_token_type
    if mode == "require":
        return "require", errors.bad_gateway(
            "upstream.token_type_not_dpop",
            "The token endpoint did not issue a DPoP-bound token.",
            detail=f"token_type={str(token_type)[:20]!r}")
    if mode == "rewrite" and bound:
        token["token_type"] = "DPoP"  # noqa: S105 - a token type, not a secret
        return "rewrite", fast_json.dumps(token)
    # pass, or rewrite with no binding recorded (the store failed open): never claim DPoP.
    return ("pass" if mode == "pass" else "unbound"), None


async def _bind_access_token(token: dict[str, Any], forward: Forward,
                             review: AnswerReview) -> BindingOutcome | OAuthError | None:
    """Whether a binding was recorded for the answer's access token; None: none to record."""
    if not forward.proves_possession:
        return None
    found = binding_for_answer(
        token, jkt=forward.dpop_jkt, x5t_s256=forward.cert_s256,
        client_id=forward.summary.client_id, requested_scope=forward.requested_scope,
        now=review.clock.now(), default_ttl_seconds=review.policy.access_binding_ttl_seconds)
    if found is None:
        return None
    access_token, binding, ttl = found
    outcome = await store_call(
        review.store.store.set_binding(ACCESS_BINDING, access_token, binding.encode(), ttl),
        review.store.failures)
    if isinstance(outcome, OAuthError):
        return outcome
    return "skipped" if outcome.skipped else "recorded"


def _refresh_token_of(token: dict[str, Any]) -> str | None:
    refresh_token = token.get("refresh_token")
    return refresh_token if isinstance(refresh_token, str) and refresh_token else None


async def _bind_refresh_token(token: dict[str, Any], refresh_token: str, bound_to: str,
                              review: AnswerReview) -> BindingOutcome | OAuthError:
    ttl = token.get("refresh_token_expires_in")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        ttl = review.policy.refresh_binding_ttl_seconds
    outcome = await store_call(
        review.store.store.set_binding(REFRESH_BINDING, refresh_token, bound_to, ttl),
        review.store.failures)
    if isinstance(outcome, OAuthError):
        return outcome
    return "skipped" if outcome.skipped else "recorded"
