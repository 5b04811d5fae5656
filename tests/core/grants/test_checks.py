"""One grant's own checks (sidecar.core.grants.checks, .context): authorization_code
(RFC 6749 §4.1.3, RFC 7636), token exchange (RFC 8693) and Native SSO, JWT bearer
(RFC 7523, shape only), CIBA and pre-authorized code."""

from __future__ import annotations

import pytest

from sidecar.core.grants.names import GrantResult
from sidecar.model import Action
from sidecar.settings import GRANT_TYPES, GrantsSettings
from tests.core.grants.support import (
    AC,
    ACCESS_TOKEN_TYPE,
    CIBA,
    DEVICE_SECRET_TYPE,
    ID_TOKEN_TYPE,
    JB,
    PAC,
    RFC8693_TYPES,
    TE,
    VALID,
    VERIFIER,
    b64url,
    jwt,
    ok,
    refused,
    sso_hash,
)

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
