"""Introspection (RFC 7662) and revocation (RFC 7009) through the sidecar: the request read
strictly, the upstream's answer given the `cnf` of the binding the sidecar recorded.

Pure: the shell forwards, hands over the upstream's answer and the binding it looked up, and
sends what comes back. What the upstream said is never removed or changed; the sidecar only
adds what it knows, and reports where the upstream says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sidecar import errors, fast_json
from sidecar.core.access_binding import AccessBinding
from sidecar.core.credentials import extract_client_credentials
from sidecar.errors import OAuthError
from sidecar.model import FormParams

JSON_TYPE = "application/json"
# RFC 9701 §4: a JWT-formatted introspection answer is signed by the upstream; a sidecar that
# edited it would break the signature, so it passes unchanged.
JWT_INTROSPECTION_TYPE = "application/token-introspection+jwt"


def token_parameter(params: FormParams) -> str | OAuthError:
    """RFC 7662 §2.1 and RFC 7009 §2.1: exactly one `token` (a duplicate was refused by the
    strict form reader already); `token_type_hint` is allowed and not needed here."""
    token = params.get("token")
    if not token:
        return errors.invalid_request("introspection.missing_token",
                                      "The token parameter is missing.")
    return token


@dataclass(frozen=True, slots=True)
class IntrospectionEdit:
    body: bytes | None = None  # the answer to send instead, when something was added
    notes: tuple[str, ...] = ()  # for logs and metrics: cnf.added, cnf.conflict, ...


def is_active_json(status: int, content_type: str, body: bytes) -> dict[str, Any] | None:
    """The upstream's answer as a JSON object when it says `active: true` (RFC 7662 §2.2),
    else None: inactive, an error, JWT-formatted or not JSON at all pass unchanged."""
    if status != 200 or content_type != JSON_TYPE:
        return None
    answer = fast_json.loads_object(body)
    if answer is None or answer.get("active") is not True:
        return None
    return answer


def add_binding(answer: dict[str, Any], binding: AccessBinding) -> IntrospectionEdit:
    """`cnf` (RFC 9449 §6.2 `jkt`, RFC 8705 §3.2 `x5t#S256`) and, for a DPoP binding,
    `token_type: DPoP` (RFC 9449 §6.2), added to an active answer without touching what the
    upstream said. A member the upstream gave a different value is a conflict: reported, and
    the upstream's value stays (it issued the token; the sidecar may be the one that is stale)."""
    notes: list[str] = []
    upstream_cnf = answer.get("cnf")
    if upstream_cnf is not None and not isinstance(upstream_cnf, dict):
        return IntrospectionEdit(notes=("cnf.conflict",))
    cnf = dict(upstream_cnf or {})
    for name, value in binding.cnf().items():
        if name not in cnf:
            cnf[name] = value
        elif cnf[name] != value:
            notes.append("cnf.conflict")
    if cnf != (upstream_cnf or {}):
        answer["cnf"] = cnf
        notes.append("cnf.added")
    if binding.is_dpop:
        token_type = answer.get("token_type")
        if token_type is None:
            answer["token_type"] = "DPoP"  # noqa: S105 - a token type, not a secret
            notes.append("token_type.added")
        elif not (isinstance(token_type, str) and token_type.lower() == "dpop"):
            notes.append("token_type.conflict")
    if "cnf.added" not in notes and "token_type.added" not in notes:
        return IntrospectionEdit(notes=tuple(notes) or ("cnf.unchanged",))
    return IntrospectionEdit(body=json.dumps(answer, separators=(",", ":")).encode(),
                             notes=tuple(notes))


def revoked_by_owner(binding: AccessBinding, authorization: str | None,
                     params: FormParams) -> bool:
    """The revocation's caller authenticated as the client the token was issued to (RFC 7009
    §2.1: a server revokes only the caller's own tokens, and answers 200 either way). The
    upstream checked the credentials; the sidecar compares whom they name. A bare client_id
    is not enough: a server that does not revoke access tokens still answers 200 (§2.1
    makes that support a SHOULD), so whoever held a stolen token and its public client's id
    could strip the binding and use the token as a bearer token. A public client's binding
    expires with its token instead."""
    if not binding.client_id:
        return False
    credentials = extract_client_credentials(authorization, params, has_certificate=False,
                                             realm="")
    return (not isinstance(credentials, OAuthError) and credentials.method != "none"
            and credentials.client_id == binding.client_id)
