"""The checks on every grant (sidecar.core.grants.common): resource (RFC 8707 §2),
authorization_details (RFC 9396 §2, §5), scope (RFC 6749 §3.3)."""

from __future__ import annotations

import pytest

from sidecar.core.grants.names import MAX_AUTHORIZATION_DETAILS_DEPTH, GrantResult
from sidecar.core.grants.validate import validate_grant
from sidecar.model import Action
from sidecar.settings import GRANT_TYPES
from tests.core.grants.support import AC, DEFAULTS, VALID, form, ok, refused

# resource (RFC 8707 §2), on every grant.


@pytest.mark.parametrize("grant_type", GRANT_TYPES)
def test_resource_checked_on_every_grant(grant_type: str) -> None:
    base = {"grant_type": grant_type, **VALID[grant_type]}
    assert isinstance(validate_grant(form({**base, "resource": "https://api.example.com/"}),
                                     DEFAULTS), GrantResult)
    refused({**base, "resource": "api.example.com"}, "invalid_target", "resource.not_absolute")


@pytest.mark.parametrize("resources", [
    ("https://api.example.com",),
    ("https://api.example.com/v1?tenant=a",),
    ("https://a.example.com", "https://b.example.com", "urn:example:resource"),
    ("", "https://a.example.com"),  # an empty value is treated as omitted
])
def test_resource_accepted(resources: tuple[str, ...]) -> None:
    assert ok({"grant_type": "client_credentials", "resource": resources}).action is Action.OK


@pytest.mark.parametrize(("resources", "result_code"), [
    (("/api",), "resource.not_absolute"),
    (("api",), "resource.not_absolute"),
    (("//api.example.com",), "resource.not_absolute"),
    (("https://api.example.com/a b",), "resource.not_absolute"),
    (("https://a.example.com", "relative/path"), "resource.not_absolute"),
    (("https://api.example.com#",), "resource.fragment"),
    (("https://api.example.com/#frag",), "resource.fragment"),
    (("https://a.example.com", "https://b.example.com/#x"), "resource.fragment"),
])
def test_resource_refused(resources: tuple[str, ...], result_code: str) -> None:
    refused({"grant_type": "client_credentials", "resource": resources}, "invalid_target",
            result_code)


def nested(depth: int) -> str:
    """An array holding one object whose value nests arrays to `depth` levels in all."""
    inner = "1"
    for _ in range(depth - 2):
        inner = f"[{inner}]"
    return f'[{{"type": "x", "v": {inner}}}]'


@pytest.mark.parametrize("details", [
    "[]",
    '[{"type": "payment_initiation", "instructedAmount": {"currency": "EUR", '
    '"amount": "123.50"}, "creditorName": "Merchant A"}]',
    '[{"type": "a"}, {"type": "b", "locations": ["https://x.example"], "actions": ["read"]}]',
    ' [ { "type" : "openid_credential" , "credential_configuration_id": "UniversityDegree" } ] ',
    nested(MAX_AUTHORIZATION_DETAILS_DEPTH),
])
def test_authorization_details_accepted(details: str) -> None:
    assert ok({"grant_type": AC, "code": "c", "authorization_details": details}
              ).action is Action.OK


@pytest.mark.parametrize(("details", "result_code"), [
    ("not json", "authorization_details.not_json"),
    ('[{"type": "a"}', "authorization_details.not_json"),
    ('[{"type": "a"}] x', "authorization_details.not_json"),
    ('[{"type": "a", "v": NaN}]', "authorization_details.not_json"),
    ('[{"type": "a", "v": Infinity}]', "authorization_details.not_json"),
    ('[{"type": "a", "n": ' + "1" * 5000 + "}]", "authorization_details.not_json"),
    ('{"type": "a"}', "authorization_details.not_array"),
    ('"a"', "authorization_details.not_array"),
    ("1", "authorization_details.not_array"),
    ("null", "authorization_details.not_array"),
    ('["a"]', "authorization_details.not_object"),
    ('[{"type": "a"}, []]', "authorization_details.not_object"),
    ('[{"type": "a"}, null]', "authorization_details.not_object"),
    ("[{}]", "authorization_details.missing_type"),
    ('[{"Type": "a"}]', "authorization_details.missing_type"),
    ('[{"type": "a"}, {"actions": ["read"]}]', "authorization_details.missing_type"),
    ('[{"type": 1}]', "authorization_details.missing_type"),
    ('[{"type": null}]', "authorization_details.missing_type"),
    ('[{"type": ["a"]}]', "authorization_details.missing_type"),
    ('[{"type": {"a": 1}}]', "authorization_details.missing_type"),
    ('[{"type": true}]', "authorization_details.missing_type"),
    ('[{"type": ""}]', "authorization_details.missing_type"),
    (nested(MAX_AUTHORIZATION_DETAILS_DEPTH + 1), "authorization_details.too_deep"),
    ("[" * 100_000 + "]" * 100_000, "authorization_details.too_deep"),
    ("[" * 100_000, "authorization_details.too_deep"),
    ('[{"type": "a", "v": ' + '{"a":' * 100_000 + "1" + "}" * 100_000 + "}]",
     "authorization_details.too_deep"),
])
def test_authorization_details_refused(details: str, result_code: str) -> None:
    refused({"grant_type": "client_credentials", "authorization_details": details},
            "invalid_authorization_details", result_code)


def test_authorization_details_sent_twice() -> None:
    refused({"grant_type": "client_credentials", "authorization_details": ("[]", "[]")},
            "invalid_request", "grant.duplicate_parameter")


# ---------------------------------------------------------------------------------------
# scope (RFC 6749 §3.3), on every grant.


@pytest.mark.parametrize("scope", [
    "openid", "openid profile email", "read:all write:all", "https://api.example.com/read",
    "!#[]^~", "a" * 1000,
])
def test_scope_accepted(scope: str) -> None:
    assert ok({"grant_type": "client_credentials", "scope": scope}).action is Action.OK


@pytest.mark.parametrize("scope", [
    'openid "profile"', "openid pro\\file", "openid  profile", " openid", "openid ", " ",
    "openid\tprofile", "openid\nprofile", "openid\x7f", "openid\x00", "\u00e9",
    "openid\u00a0profile",
])
def test_scope_refused(scope: str) -> None:
    refused({"grant_type": "client_credentials", "scope": scope}, "invalid_scope", "scope.syntax")


def test_scope_checked_on_every_grant() -> None:
    for grant_type in GRANT_TYPES:
        refused({"grant_type": grant_type, **VALID[grant_type], "scope": "a  b"},
                "invalid_scope", "scope.syntax")


# ---------------------------------------------------------------------------------------
