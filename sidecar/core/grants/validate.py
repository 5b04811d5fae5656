"""The entry point: validate a token request's grant parameters and choose the action."""

from __future__ import annotations

from sidecar import errors
from sidecar.core.grants.common import COMMON_CHECKS
from sidecar.core.grants.context import native_sso_context
from sidecar.core.grants.names import PASSWORD, GrantResult
from sidecar.core.grants.params import missing_parameter, single_value
from sidecar.core.grants.rules import RULES, GrantRule
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import GrantsSettings


def validate_grant(params: FormParams, settings: GrantsSettings) -> GrantResult | OAuthError:
    grant_type = single_value(params, "grant_type")
    if isinstance(grant_type, OAuthError):
        return grant_type
    if grant_type is None:
        # RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6: grant_type is REQUIRED.
        return errors.invalid_request(
            "grant.missing_grant_type", "The grant_type parameter is required."
        )
    rule = RULES.get(grant_type)
    if rule is None:
        # RFC 6749 §5.2: a grant type the authorization server does not support.
        return errors.unsupported_grant_type(
            "grant.unsupported", "The grant_type is not supported."
        )
    if grant_type not in settings.allowed:
        return errors.unsupported_grant_type(
            "grant.not_allowed", "The grant_type is not enabled on this endpoint."
        )
    if grant_type == PASSWORD and settings.password == "reject":  # noqa: S105 - a mode
        # RFC 9700 §2.4: the resource owner password credentials grant MUST NOT be used.
        return errors.unsupported_grant_type(
            "grant.password_rejected",
            "The password grant is deprecated (RFC 9700 §2.4) and not accepted.",
        )
    problem = _check_rule(params, settings, rule)
    if problem is None:
        for common in COMMON_CHECKS:
            problem = common(params)
            if problem is not None:
                break
    if problem is not None:
        return problem
    context = native_sso_context(params, grant_type)
    if isinstance(context, OAuthError):
        return context
    return GrantResult(grant_type, rule.action, context)


def _check_rule(params: FormParams, settings: GrantsSettings, rule: GrantRule
                ) -> OAuthError | None:
    for name in rule.required:
        value = single_value(params, name)
        if value is None:
            return missing_parameter(name)
        if isinstance(value, OAuthError):
            return value
    for name in rule.optional:
        value = single_value(params, name)
        if isinstance(value, OAuthError):
            return value
    for check in rule.checks:
        problem = check(params, settings)
        if problem is not None:
            return problem
    return None
