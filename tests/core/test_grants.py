"""Grant validation: each grant's rule, the common checks, the Native SSO context."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.form import parse_form
from sidecar.core.grants.names import MAX_AUTHORIZATION_DETAILS_DEPTH, GrantResult
from sidecar.core.grants.rules import RULES
from sidecar.core.grants.validate import validate_grant
from sidecar.errors import OAuthError
from sidecar.model import Action, FormParams
from sidecar.settings import GRANT_TYPES, GrantsSettings

DEFAULTS = GrantsSettings()

AC = "authorization_code"
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
JB = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DC = "urn:ietf:params:oauth:grant-type:device_code"
CIBA = "urn:openid:params:grant-type:ciba"
PAC = "urn:ietf:params:oauth:grant-type:pre-authorized_code"
DEVICE_SECRET_TYPE = "urn:openid:params:token-type:device-secret"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
RFC8693_TYPES = [
    "urn:ietf:params:oauth:token-type:access_token",
    "urn:ietf:params:oauth:token-type:refresh_token",
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    "urn:ietf:params:oauth:token-type:jwt",
]
VERIFIER = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B


def form(values: Mapping[str, str | tuple[str, ...]]) -> FormParams:
    return FormParams({k: (v,) if isinstance(v, str) else v for k, v in values.items()})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt(header: object = None, payload: object = None, signature: str = "c2ln") -> str:
    header = {"alg": "ES256", "typ": "JWT"} if header is None else header
    payload = {"iss": "a", "sub": "b", "aud": "c", "exp": 1} if payload is None else payload
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()),
                     signature])


def ok(values: Mapping[str, str | tuple[str, ...]],
       grants: GrantsSettings = DEFAULTS) -> GrantResult:
    result = validate_grant(form(values), grants)
    assert isinstance(result, GrantResult), result
    return result


def refused(values: Mapping[str, str | tuple[str, ...]], code: str, result_code: str,
            grants: GrantsSettings = DEFAULTS) -> OAuthError:
    result = validate_grant(form(values), grants)
    assert isinstance(result, OAuthError), result
    assert (result.code, result.result_code) == (code, result_code)
    assert result.status == 400
    # Nothing the client sent is echoed: only static text naming parameters.
    for name, value in values.items():
        for v in (value,) if isinstance(value, str) else value:
            if name != "grant_type" and len(v) > 3:
                assert v not in result.description
                assert v not in result.detail
    return result


def sso_hash(secret: str) -> str:
    # OpenID Connect Native SSO: base64url, no padding, of SHA-256 of the device secret.
    digest = hashlib.sha256(secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# ---------------------------------------------------------------------------------------
# Every grant: the minimal valid request and its action.

VALID: dict[str, dict[str, str | tuple[str, ...]]] = {
    AC: {"code": "SplxlOBeZQQYbYS6WxSbIA"},
    "refresh_token": {"refresh_token": "tGzv3JOkF0XG5Qx2TlKWIA"},
    "client_credentials": {},
    "password": {"username": "johndoe", "password": "A3ddj3w"},
    DC: {"device_code": "GmRhmhcxhwAzkoEqiMEg_DnyEysNkuNhszIySk9eS"},
    TE: {"subject_token": "accVkjcJyb4BWCxGsndESCJQbdFMogUC5PbRDqceLTC",
         "subject_token_type": ACCESS_TOKEN_TYPE},
    JB: {"assertion": jwt()},
    CIBA: {"auth_req_id": "1c266114-a1be-4252-8ad1-04986c5b9ac1"},
    PAC: {"pre-authorized_code": "SplxlOBeZQQYbYS6WxSbIA"},
}
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
# authorization_code: redirect_uri and code_verifier.


@pytest.mark.parametrize("uri", [
    "https://client.example.com/cb",
    "https://client.example.com/cb?x=1&y=%2F",
    "http://127.0.0.1:8080/cb",
    "http://[::1]:8080/cb",
    "com.example.app:/oauth2redirect",
    "urn:ietf:wg:oauth:2.0:oob",
])
def test_redirect_uri_accepted(uri: str) -> None:
    assert ok({"grant_type": AC, "code": "abc", "redirect_uri": uri}).action is Action.OK


@pytest.mark.parametrize("uri", [
    "/cb", "cb", "//client.example.com/cb", "client.example.com/cb", "1https://x/cb",
    "https://client.example.com/c b", "https://client.example.com/%zz",
    "https://client.example.com/\u00e9", "https://client.example.com/cb\n",
])
def test_redirect_uri_not_absolute(uri: str) -> None:
    refused({"grant_type": AC, "code": "abc", "redirect_uri": uri}, "invalid_request",
            "redirect_uri.not_absolute")


@pytest.mark.parametrize("uri", ["https://client.example.com/cb#", "https://c.example/cb#x",
                                 "com.example.app:/cb#frag"])
def test_redirect_uri_with_fragment(uri: str) -> None:
    refused({"grant_type": AC, "code": "abc", "redirect_uri": uri}, "invalid_request",
            "redirect_uri.fragment")


@pytest.mark.parametrize("verifier", [VERIFIER, "a" * 43, "A" * 128, "-._~" * 11])
def test_code_verifier_accepted(verifier: str) -> None:
    assert ok({"grant_type": AC, "code": "abc", "code_verifier": verifier}).action is Action.OK


@pytest.mark.parametrize("verifier", [
    "a" * 42, "a" * 129, VERIFIER[:-1] + "+", VERIFIER[:-1] + "=", VERIFIER[:-1] + "/",
    VERIFIER[:-1] + " ", VERIFIER[:-1] + "\u00e9", VERIFIER + "\n", "\u0661" * 43,
])
def test_code_verifier_malformed_is_invalid_request(verifier: str) -> None:
    # Malformed syntax is invalid_request; invalid_grant is the AS's failed verification.
    refused({"grant_type": AC, "code": "abc", "code_verifier": verifier}, "invalid_request",
            "pkce.code_verifier_syntax")


# ---------------------------------------------------------------------------------------
# Token exchange (RFC 8693) and Native SSO.


@pytest.mark.parametrize("token_type", [*RFC8693_TYPES, DEVICE_SECRET_TYPE])
def test_token_exchange_token_types(token_type: str) -> None:
    result = ok({"grant_type": TE, "subject_token": "s-token", "subject_token_type": token_type,
                 "actor_token": "a-token", "actor_token_type": token_type,
                 "requested_token_type": token_type})
    assert result.action is Action.TOKEN_EXCHANGE


@pytest.mark.parametrize("name", ["subject_token_type", "actor_token_type",
                                  "requested_token_type"])
@pytest.mark.parametrize("token_type", [
    "urn:ietf:params:oauth:token-type:id-token", "access_token",
    "URN:IETF:PARAMS:OAUTH:TOKEN-TYPE:JWT", "urn:example:custom", "urn:x-oath:params:oauth:x",
])
def test_token_exchange_unknown_token_type(name: str, token_type: str) -> None:
    values = {"grant_type": TE, "subject_token": "s-token", "subject_token_type": ID_TOKEN_TYPE,
              "actor_token": "a-token", "actor_token_type": ACCESS_TOKEN_TYPE, name: token_type}
    error = refused(values, "invalid_request", "token_exchange.unsupported_token_type")
    assert name in error.description


def test_token_exchange_extra_token_types() -> None:
    extra = GrantsSettings(extra_token_types=("urn:example:custom",))
    values = {"grant_type": TE, "subject_token": "s-token",
              "subject_token_type": "urn:example:custom",
              "requested_token_type": "urn:example:custom"}
    assert ok(values, extra).action is Action.TOKEN_EXCHANGE
    refused(values, "invalid_request", "token_exchange.unsupported_token_type")


def test_actor_token_without_type() -> None:
    refused({"grant_type": TE, **VALID[TE], "actor_token": "a-token"},
            "invalid_request", "token_exchange.actor_token_type_missing")


def test_actor_token_type_without_token() -> None:
    refused({"grant_type": TE, **VALID[TE], "actor_token_type": ACCESS_TOKEN_TYPE},
            "invalid_request", "token_exchange.actor_token_missing")


def test_token_exchange_audience_and_resource_may_repeat() -> None:
    result = ok({"grant_type": TE, **VALID[TE], "audience": ("billing", "urn:example:a"),
                 "resource": ("https://a.example/", "https://b.example/")})
    assert result.action is Action.TOKEN_EXCHANGE


def test_audience_left_alone_on_other_grants() -> None:
    assert ok({"grant_type": "client_credentials", "audience": ("not a uri #", "x")}).context == ()


NATIVE_SSO_SECRET = "WkI0Nk1aSjk2TUZnZDRMRDdHRkxLTXc0"


def test_native_sso_device_secret_as_actor_token() -> None:
    result = ok({"grant_type": TE, "subject_token": jwt(), "subject_token_type": ID_TOKEN_TYPE,
                 "actor_token": NATIVE_SSO_SECRET, "actor_token_type": DEVICE_SECRET_TYPE,
                 "scope": "openid profile"})
    assert result == GrantResult(TE, Action.TOKEN_EXCHANGE,
                                 (("Device-Secret-Hash", sso_hash(NATIVE_SSO_SECRET)),))
    header_value = result.context[0][1]
    assert "=" not in header_value and "+" not in header_value and "/" not in header_value
    assert len(header_value) == 43


def test_native_sso_known_vector() -> None:
    # SHA-256("abc") = ba7816bf...; its base64url without padding, written out by hand.
    result = ok({"grant_type": TE, **VALID[TE], "actor_token": "abc",
                 "actor_token_type": DEVICE_SECRET_TYPE})
    assert result.context == (("Device-Secret-Hash",
                               "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"),)


def test_non_device_secret_actor_adds_no_context() -> None:
    result = ok({"grant_type": TE, **VALID[TE], "actor_token": "a-token",
                 "actor_token_type": ACCESS_TOKEN_TYPE})
    assert result.context == ()


def test_device_secret_as_subject_token_adds_no_context() -> None:
    result = ok({"grant_type": TE, "subject_token": "s", "subject_token_type": DEVICE_SECRET_TYPE})
    assert result.context == ()


@pytest.mark.parametrize("grant_type", GRANT_TYPES)
def test_device_secret_parameter_on_any_grant(grant_type: str) -> None:
    result = ok({"grant_type": grant_type, **VALID[grant_type],
                 "device_secret": NATIVE_SSO_SECRET})
    assert result.context == (("Device-Secret-Hash", sso_hash(NATIVE_SSO_SECRET)),)


def test_device_secret_parameter_and_actor_token_agree() -> None:
    result = ok({"grant_type": TE, **VALID[TE], "actor_token": NATIVE_SSO_SECRET,
                 "actor_token_type": DEVICE_SECRET_TYPE, "device_secret": NATIVE_SSO_SECRET})
    assert result.context == (("Device-Secret-Hash", sso_hash(NATIVE_SSO_SECRET)),)


def test_device_secret_parameter_and_actor_token_differ() -> None:
    refused({"grant_type": TE, **VALID[TE], "actor_token": NATIVE_SSO_SECRET,
             "actor_token_type": DEVICE_SECRET_TYPE, "device_secret": "another-secret"},
            "invalid_request", "device_secret.conflict")


def test_device_secret_sent_twice() -> None:
    refused({"grant_type": "client_credentials", "device_secret": ("one1", "two2")},
            "invalid_request", "grant.duplicate_parameter")


def test_device_secret_non_ascii_and_lone_surrogate() -> None:
    assert ok({"grant_type": "client_credentials", "device_secret": "s\u00e9cr\u00e8t"}
              ).context == (("Device-Secret-Hash", sso_hash("s\u00e9cr\u00e8t")),)
    # Cannot come from the wire (the form parser checks UTF-8), but must not raise.
    assert isinstance(ok({"grant_type": "client_credentials", "device_secret": "\ud800"}),
                      GrantResult)


# ---------------------------------------------------------------------------------------
# JWT bearer (RFC 7523): a well-formed JWT, signature not verified here.


def test_jwt_bearer_accepts_any_signature_bytes() -> None:
    result = ok({"grant_type": JB, "assertion": jwt(signature="not-verified-here_")})
    assert result == GrantResult(JB, Action.JWT_BEARER)


def _seg(data: bytes) -> str:
    return b64url(data)


GOOD_H, GOOD_P = jwt().split(".")[:2]


def compact(header: str, payload: str, signature: str = "c2ln") -> str:
    return f"{header}.{payload}.{signature}"


@pytest.mark.parametrize("assertion", [
    "abc",
    f"{GOOD_H}.{GOOD_P}",
    f"{GOOD_H}.{GOOD_P}.c2ln.extra",
    f"{GOOD_H}.{GOOD_P}.c2ln.a.b",  # a JWE has five segments
    f".{GOOD_P}.c2ln",
    f"{GOOD_H}..c2ln",
    f"{GOOD_H}=.{GOOD_P}.c2ln",
    f"{GOOD_H}.{GOOD_P}.c2ln=",
    f"{GOOD_H}.{GOOD_P}+.c2ln",
    f" {GOOD_H}.{GOOD_P}.c2ln",
    f"{GOOD_H}.{GOOD_P}.c2ln\n",
    f"{GOOD_H}.{GOOD_P}.c2\u00e9ln",
    compact(_seg(b"not json"), GOOD_P),
    compact(GOOD_H, _seg(b"not json")),
    compact(_seg(b"[1, 2]"), GOOD_P),
    compact(GOOD_H, _seg(b'"claims"')),
    compact(_seg(b"{}"), GOOD_P),
    compact(_seg(b'{"alg": 256}'), GOOD_P),
    compact(_seg(b'{"alg": null}'), GOOD_P),
    compact(_seg(b'{"alg": ""}'), GOOD_P),
    compact(_seg(b'{"alg": "ES256"}\xff'), GOOD_P),  # not UTF-8
    compact(_seg(b'{"alg": "ES256", "x": NaN}'), GOOD_P),
    compact("A" * 5, GOOD_P),  # 5 mod 4 == 1: not the length of any base64url text
    "A.B.C",
    compact(_seg(b"[" * 100_000), GOOD_P),  # deep nesting: RecursionError is caught
    compact(GOOD_H, _seg(b'{"a":' * 50_000 + b"1" + b"}" * 50_000)),
    compact(GOOD_H, _seg(b'{"n": ' + b"1" * 5000 + b"}")),  # int too long for Python
])
def test_jwt_bearer_malformed_assertion(assertion: str) -> None:
    refused({"grant_type": JB, "assertion": assertion}, "invalid_grant", "assertion.malformed")


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "None"}, {"alg": "NONE"}])
def test_jwt_bearer_unsigned_assertion(header: dict[str, str]) -> None:
    refused({"grant_type": JB, "assertion": jwt(header, signature="")}, "invalid_grant",
            "assertion.unsigned")
    refused({"grant_type": JB, "assertion": jwt(header)}, "invalid_grant", "assertion.unsigned")


def test_jwt_bearer_empty_signature() -> None:
    refused({"grant_type": JB, "assertion": jwt(signature="")}, "invalid_grant",
            "assertion.unsigned")


def test_jwt_bearer_missing_assertion_is_invalid_request() -> None:
    refused({"grant_type": JB}, "invalid_request", "grant.missing_parameter")


# ---------------------------------------------------------------------------------------
# CIBA and pre-authorized code.


def test_ciba() -> None:
    assert ok({"grant_type": CIBA, "auth_req_id": "r-1"}) == GrantResult(CIBA, Action.OK)
    refused({"grant_type": CIBA}, "invalid_request", "grant.missing_parameter")


def test_pre_authorized_code_with_and_without_tx_code() -> None:
    assert ok({"grant_type": PAC, "pre-authorized_code": "c"}).action is Action.OK
    assert ok({"grant_type": PAC, "pre-authorized_code": "c", "tx_code": "493536"}
              ).action is Action.OK
    refused({"grant_type": PAC, "tx_code": "493536"}, "invalid_request",
            "grant.missing_parameter")


# ---------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------
# authorization_details (RFC 9396 §2, §5), on every grant.


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
# Nothing raises.

KNOWN_NAMES = sorted({"grant_type", "scope", "resource", "audience", "authorization_details",
                      "device_secret", "actor_token", "actor_token_type", "subject_token",
                      "subject_token_type", "requested_token_type", "redirect_uri",
                      "code_verifier", "assertion", "tx_code"}
                     | {name for params in VALID.values() for name in params})
VALUES = st.one_of(
    st.text(),
    st.sampled_from([*GRANT_TYPES, *RFC8693_TYPES, DEVICE_SECRET_TYPE, jwt(), VERIFIER, "[]",
                     '[{"type": "a"}]', "[" * 5000, "https://a.example/#x", "openid  x"]),
    st.text(alphabet="[]{}\"type:,1 ", max_size=200),
    st.text(alphabet="ABCabc012-_.=", max_size=200),
)


@settings(max_examples=400, deadline=None)
@given(
    params=st.dictionaries(
        st.one_of(st.sampled_from(KNOWN_NAMES), st.text(max_size=20)),
        st.lists(VALUES, max_size=3).map(tuple),
        max_size=12,
    ),
    allowed=st.lists(st.sampled_from(GRANT_TYPES), unique=True).map(tuple),
    password=st.sampled_from(["forward", "reject"]),
    extra=st.lists(st.text(max_size=30), max_size=2).map(tuple),
)
def test_arbitrary_parameters_never_raise(
    params: dict[str, tuple[str, ...]], allowed: tuple[str, ...], password: str,
    extra: tuple[str, ...],
) -> None:
    grants = GrantsSettings(allowed=allowed, password=password, extra_token_types=extra)
    result = validate_grant(FormParams(params), grants)
    assert isinstance(result, GrantResult | OAuthError)
    if isinstance(result, OAuthError):
        assert 400 <= result.status < 500
    else:
        assert result.grant_type in allowed


@settings(max_examples=200, deadline=None)
@given(grant_type=st.sampled_from(GRANT_TYPES), extra=st.dictionaries(
    st.sampled_from(KNOWN_NAMES), VALUES.map(lambda v: (v,)), max_size=6))
def test_valid_requests_with_arbitrary_additions_never_raise(
    grant_type: str, extra: dict[str, tuple[str, ...]],
) -> None:
    values = {k: (v,) if isinstance(v, str) else v for k, v in VALID[grant_type].items()}
    result = validate_grant(FormParams({**values, **extra, "grant_type": (grant_type,)}),
                            DEFAULTS)
    assert isinstance(result, GrantResult | OAuthError)
