"""The rule table (sidecar.core.grants.rules): every grant's minimal valid request and its
action, and grant_type itself."""

from __future__ import annotations

import pytest

from sidecar.core.form import parse_form
from sidecar.core.grants.names import GrantResult
from sidecar.core.grants.rules import RULES
from sidecar.core.grants.validate import validate_grant
from sidecar.model import Action, FormParams
from sidecar.settings import GRANT_TYPES, GrantsSettings
from tests.core.grants.support import (
    AC,
    DEFAULTS,
    JB,
    PAC,
    TE,
    VALID,
    VERIFIER,
    jwt,
    ok,
    refused,
)

ACTIONS = {"password": Action.PASSWORD, TE: Action.TOKEN_EXCHANGE, JB: Action.JWT_BEARER}


def test_every_configured_grant_type_has_a_rule_and_a_test() -> None:
    assert set(RULES) == set(GRANT_TYPES) == set(VALID)


@pytest.mark.parametrize("grant_type", GRANT_TYPES)
def test_valid_request_of_each_grant(grant_type: str) -> None:
    result = ok({"grant_type": grant_type, **VALID[grant_type]})
    assert result == GrantResult(grant_type, ACTIONS.get(grant_type, Action.OK), ())


@pytest.mark.parametrize(
    ("grant_type", "name"),
    [(g, name) for g, params in VALID.items() for name in params],
)
def test_each_required_parameter(grant_type: str, name: str) -> None:
    values = {"grant_type": grant_type, **VALID[grant_type]}
    missing = {k: v for k, v in values.items() if k != name}
    error = refused(missing, "invalid_request", "grant.missing_parameter")
    assert name in error.description
    # RFC 6749 §3.1: a parameter without a value is treated as omitted.
    refused({**values, name: ""}, "invalid_request", "grant.missing_parameter")
    refused({**values, name: ()}, "invalid_request", "grant.missing_parameter")


def test_required_parameter_sent_twice() -> None:
    # RFC 7523 §2.1: exactly one assertion; RFC 6749 §3.2: no parameter twice.
    refused({"grant_type": JB, "assertion": (jwt(), jwt())},
            "invalid_request", "grant.duplicate_parameter")
    refused({"grant_type": AC, "code": ("a", "b")}, "invalid_request", "grant.duplicate_parameter")


def test_optional_parameter_sent_twice() -> None:
    refused({"grant_type": PAC, **VALID[PAC], "tx_code": ("1234", "5678")},
            "invalid_request", "grant.duplicate_parameter")
    refused({"grant_type": AC, **VALID[AC], "code_verifier": (VERIFIER, VERIFIER)},
            "invalid_request", "grant.duplicate_parameter")


def test_through_the_form_parser() -> None:
    params = parse_form(b"grant_type=authorization_code&code=abc"
                        b"&redirect_uri=https%3A%2F%2Fclient.example.com%2Fcb"
                        b"&resource=https%3A%2F%2Fapi.example.com&resource=urn%3Aexample%3Aapi"
                        b"&scope=openid+profile")
    assert isinstance(params, FormParams)
    assert validate_grant(params, DEFAULTS) == GrantResult(AC, Action.OK)


# ---------------------------------------------------------------------------------------
# grant_type itself.


def test_missing_grant_type() -> None:
    refused({"code": "abc"}, "invalid_request", "grant.missing_grant_type")
    refused({"grant_type": ""}, "invalid_request", "grant.missing_grant_type")


def test_grant_type_sent_twice() -> None:
    refused({"grant_type": (AC, AC), "code": "abc"}, "invalid_request",
            "grant.duplicate_parameter")


@pytest.mark.parametrize("grant_type", ["implicit", "token", "AUTHORIZATION_CODE",
                                        "authorization_code ", "urn:x:unknown", "<script>"])
def test_unknown_grant_type(grant_type: str) -> None:
    error = refused({"grant_type": grant_type, "code": "abc"}, "unsupported_grant_type",
                    "grant.unsupported")
    assert grant_type not in error.description


def test_grant_type_not_in_allowed_list() -> None:
    only = GrantsSettings(allowed=("authorization_code", "refresh_token"))
    assert ok({"grant_type": AC, "code": "abc"}, only).action is Action.OK
    refused({"grant_type": "client_credentials"}, "unsupported_grant_type", "grant.not_allowed",
            only)
    refused({"grant_type": TE, **VALID[TE]}, "unsupported_grant_type", "grant.not_allowed", only)


def test_password_forwarded_by_default() -> None:
    result = ok({"grant_type": "password", "username": "u", "password": "p@ss"},
                GrantsSettings(password="forward"))
    assert result.action is Action.PASSWORD


def test_password_rejected_by_setting() -> None:
    error = refused({"grant_type": "password", "username": "johndoe", "password": "A3ddj3w"},
                    "unsupported_grant_type", "grant.password_rejected",
                    GrantsSettings(password="reject"))
    assert "RFC 9700 §2.4" in error.description
    assert "deprecated" in error.description
    # The setting refuses the grant before its parameters are looked at.
    refused({"grant_type": "password"}, "unsupported_grant_type", "grant.password_rejected",
            GrantsSettings(password="reject"))


# ---------------------------------------------------------------------------------------
