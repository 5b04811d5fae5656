"""The rule table: for each `grant_type`, the parameters it requires and allows, its own
checks, its action (node-oidc-provider's shape)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.core.grants.checks import (
    GrantCheck,
    check_actor,
    check_assertion,
    check_code_verifier,
    check_redirect_uri,
    check_requested_token_type,
    check_subject_token_type,
)
from sidecar.core.grants.names import (
    AUTHORIZATION_CODE,
    CIBA,
    CLIENT_CREDENTIALS,
    DEVICE_CODE,
    JWT_BEARER,
    PASSWORD,
    PRE_AUTHORIZED_CODE,
    REFRESH_TOKEN,
    TOKEN_EXCHANGE,
)
from sidecar.model import Action


@dataclass(frozen=True, slots=True)
class GrantRule:
    action: Action
    required: tuple[str, ...] = ()  # present exactly once, with a value
    optional: tuple[str, ...] = ()  # at most once
    checks: tuple[GrantCheck, ...] = ()


RULES: Mapping[str, GrantRule] = {
    # RFC 6749 §4.1.3
    AUTHORIZATION_CODE: GrantRule(
        Action.OK, required=("code",), optional=("redirect_uri", "code_verifier"),
        checks=(check_redirect_uri, check_code_verifier),
    ),
    # RFC 6749 §6
    REFRESH_TOKEN: GrantRule(Action.OK, required=("refresh_token",)),
    # RFC 6749 §4.4.2
    CLIENT_CREDENTIALS: GrantRule(Action.OK),
    # RFC 6749 §4.3.2 (deprecated: RFC 9700 §2.4)
    PASSWORD: GrantRule(Action.PASSWORD, required=("username", "password")),
    # RFC 8628 §3.4
    DEVICE_CODE: GrantRule(Action.OK, required=("device_code",)),
    # RFC 8693 §2.1
    TOKEN_EXCHANGE: GrantRule(
        Action.TOKEN_EXCHANGE, required=("subject_token", "subject_token_type"),
        optional=("actor_token", "actor_token_type", "requested_token_type"),
        checks=(check_subject_token_type, check_actor, check_requested_token_type),
    ),
    # RFC 7523 §2.1
    JWT_BEARER: GrantRule(Action.JWT_BEARER, required=("assertion",), checks=(check_assertion,)),
    # OpenID Connect CIBA Core 1.0 §10.1
    CIBA: GrantRule(Action.OK, required=("auth_req_id",)),
    # OpenID for Verifiable Credential Issuance 1.0 §6.1
    PRE_AUTHORIZED_CODE: GrantRule(
        Action.OK, required=("pre-authorized_code",), optional=("tx_code",)
    ),
}
