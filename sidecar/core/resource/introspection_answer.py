"""The upstream's introspection answer (RFC 7662 §2.2) read strictly, and how long to keep it.

The resource side asks the upstream about a token it neither recorded nor can verify itself
(an opaque token). The answer is trusted only in its strict form:
- status 200, `Content-Type: application/json`, a JSON object without duplicate members;
- `active` the JSON literal `true` - not "true", not 1 (RFC 7662 §2.2: "REQUIRED. Boolean");
  `false` is an inactive token; anything else, or no `active`, is an answer not understood;
- `cnf`, `client_id`, `sub`, `scope`, `exp` read as a JWT access token's claims are
  (`sidecar.core.resource.confirmation`); `token_type`, when given, a string. An active answer
  whose `exp` is past is inactive, whatever `active` said.
An answer not understood is not a verdict on the token: the adapter raises
`SourceUnavailableError` (503, fail closed), it never reads it as "unbound".

Caching (README "Where the binding comes from"): an active answer is kept until the token's
`exp`, at most `max_seconds`; an inactive one `inactive_seconds`, briefly: long enough that
a client repeating a dead token does not turn into traffic towards the upstream, short
enough that a token the upstream's replica had not yet seen works a moment later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sidecar.core.jose.compact import strict_json_document
from sidecar.core.resource.confirmation import facts_from_claims
from sidecar.core.resource.token_facts import TokenFacts

JSON_TYPE: Final = "application/json"


@dataclass(frozen=True, slots=True)
class Inactive:
    """RFC 7662 §2.2 `{"active": false}`, or an active answer whose `exp` is past."""


INACTIVE: Final = Inactive()


@dataclass(frozen=True, slots=True)
class NotUnderstood:
    """Why an answer cannot be used; for logs (it names no token and no secret)."""

    reason: str


def read_answer(status: int, content_type: str, body: bytes, now: float,
                leeway_seconds: float) -> TokenFacts | Inactive | NotUnderstood:
    """What the upstream said about the token."""
    if status != 200:
        return NotUnderstood(f"HTTP status {status}")
    if content_type.lower() != JSON_TYPE:
        return NotUnderstood(f"Content-Type {content_type[:60]!r}")
    answer = strict_json_document(body)
    if answer is None:
        return NotUnderstood("the body is not a JSON object (strict: no duplicate members)")
    active = answer.get("active")
    if active is False:
        return INACTIVE
    if active is not True:
        return NotUnderstood("active is not a JSON boolean")
    return _active(answer, now, leeway_seconds)


def _active(answer: Mapping[str, object], now: float,
            leeway_seconds: float) -> TokenFacts | Inactive | NotUnderstood:
    token_type = answer.get("token_type")
    if token_type is not None and not isinstance(token_type, str):
        return NotUnderstood("token_type is not a string")
    facts = facts_from_claims(answer, "introspection")
    if isinstance(facts, str):
        return NotUnderstood(f"{facts} in the answer")
    if facts.expires_at and facts.expires_at <= now - leeway_seconds:
        return INACTIVE  # RFC 7662 §4: the resource server checks exp itself too
    return facts


def cache_seconds(answer: TokenFacts | Inactive, now: float, *, max_seconds: float,
                  inactive_seconds: float) -> float:
    """How long the answer may be served from memory; 0: not at all."""
    if isinstance(answer, Inactive):
        return max(0.0, min(inactive_seconds, max_seconds))
    if not answer.expires_at:
        return max(0.0, max_seconds)
    return max(0.0, min(float(answer.expires_at) - now, max_seconds))
