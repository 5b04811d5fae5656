"""Credential extraction (README step 2, RFC 6749 §2.3, RFC 7521 §4.2, RFC 7523 §2.2)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus

import pytest

from sidecar.core.credentials import (
    JWT_BEARER_ASSERTION,
    ClientCredentials,
    extract_client_credentials,
)
from sidecar.errors import OAuthError
from sidecar.model import FormParams

REALM = "https://as.example.com"  # the issuer


def extract(authorization: str | None, parameters: FormParams,
            has_certificate: bool) -> ClientCredentials | OAuthError:
    return extract_client_credentials(authorization, parameters, has_certificate, realm=REALM)


def params(**values: str) -> FormParams:
    return FormParams({k: (v,) for k, v in values.items()})


def basic_rfc6749(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: form-urlencode each part, then Basic."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


def jwt(header: dict[str, object], claims: dict[str, object]) -> str:
    def seg(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{seg(header)}.{seg(claims)}.c2ln"


def ok(result: ClientCredentials | OAuthError) -> ClientCredentials:
    assert isinstance(result, ClientCredentials), result
    return result


def err(result: ClientCredentials | OAuthError) -> OAuthError:
    assert isinstance(result, OAuthError), result
    return result


@pytest.mark.parametrize(("client_id", "secret"), [
    ("billing", "s3cret"),
    ("my client", "a+b%c:d"),
    ("a:b", "p=q&r"),
    ("client", "pässwörd-€"),
    ("client", ""),
])
def test_basic_is_form_decoded(client_id: str, secret: str) -> None:
    creds = ok(extract(basic_rfc6749(client_id, secret), params(), False))
    assert (creds.client_id, creds.secret, creds.method) == (client_id, secret,
                                                             "client_secret_basic")
    assert creds.used_basic


@pytest.mark.parametrize(("raw", "encoding"), [("p+ss%20w:rd-é", "utf-8"),
                                               ("p+ss%20w:rd-é", "latin-1"), ("a%ff", "utf-8")])
def test_basic_from_clients_that_skip_form_encoding(raw: str, encoding: str) -> None:
    """requests-oauth2client (UTF-8) and authlib (Latin-1) put the secret in Basic as is."""
    header = "Basic " + base64.b64encode(f"billing:{raw}".encode(encoding)).decode()
    creds = ok(extract(header, params(), False))
    assert creds.client_id == "billing"
    assert raw in creds.secret_candidates
    assert "p+ss%20w:rd-é" not in repr(creds)


def test_basic_scheme_is_case_insensitive() -> None:
    header = "BASIC " + base64.b64encode(b"a:b").decode()
    assert ok(extract(header, params(), False)).client_id == "a"


@pytest.mark.parametrize("header", [
    "Basic", "basic   ", "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b"a%zz:b").decode(),
    "Basic " + base64.b64encode(b"a:x\x00y").decode(),
    "Basic " + base64.b64encode(b":secret").decode(),
    "Basic " + base64.b64encode("é:x".encode()).decode(),
    "Basic " + base64.b64encode(b"a%0Ab:x").decode(),
])
def test_malformed_basic_is_invalid_client_with_challenge(header: str) -> None:
    error = err(extract(header, params(), False))
    assert (error.code, error.status) == ("invalid_client", 401)
    assert dict(error.headers)["WWW-Authenticate"] == \
        f'Basic realm="{REALM}", error="invalid_client"'


def test_other_schemes_are_not_client_authentication() -> None:
    creds = ok(extract("Bearer abc", params(client_id="x"), False))
    assert (creds.client_id, creds.method, creds.other_scheme) == ("x", "none", "Bearer")
    assert ok(extract("Basicfoo x", params(), False)).other_scheme == "Basicfoo"
    assert ok(extract("\u00e9 x", params(), False)).other_scheme == "non-Basic"


def test_client_secret_post() -> None:
    creds = ok(extract(None, params(client_id="c", client_secret="s"), False))
    assert (creds.client_id, creds.secret, creds.method) == ("c", "s", "client_secret_post")


def test_secret_without_id_is_invalid_request() -> None:
    assert err(extract(None, params(client_secret="s"), False)).code == \
        "invalid_request"


@pytest.mark.parametrize(("alg", "method"), [("HS256", "client_secret_jwt"),
                                             ("ES256", "private_key_jwt"),
                                             ("RS256", "private_key_jwt")])
def test_client_assertion(alg: str, method: str) -> None:
    assertion = jwt({"alg": alg}, {"iss": "c1", "sub": "c1", "aud": "x"})
    creds = ok(extract(None, params(
        client_assertion=assertion, client_assertion_type=JWT_BEARER_ASSERTION), False))
    assert (creds.client_id, creds.method, creds.assertion) == ("c1", method, assertion)



def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("claims", [
    b'{"iss": "c1", "sub": "c1", "exp": NaN}',  # json.loads reads NaN
    '{"iss": "c1", "sub": "c1"}'.encode("utf-16"),  # and UTF-16 (RFC 8259 §8.1 says UTF-8)
    b'{"iss": "c1", "sub": "c1", "sub": "c1"}',  # and duplicate members
])
def test_client_assertion_id_is_read_as_a_jwt_library_reads_it(claims: bytes) -> None:
    """Extraction only learns the client id; whether the assertion is acceptable is the
    registry's or the upstream's question, so what pyjwt reads is not refused here."""
    header = _segment(b'{"alg": "ES256"}')
    assertion = f"{header}.{_segment(claims)}.c2ln"
    creds = ok(extract(None, params(
        client_assertion=assertion, client_assertion_type=JWT_BEARER_ASSERTION), False))
    assert (creds.client_id, creds.method) == ("c1", "private_key_jwt")


def test_a_long_client_assertion_is_still_extracted() -> None:
    assertion = jwt({"alg": "ES256"}, {"iss": "c1", "sub": "c1", "pad": "x" * 20_000})
    creds = ok(extract(None, params(
        client_assertion=assertion, client_assertion_type=JWT_BEARER_ASSERTION), False))
    assert creds.client_id == "c1"


@pytest.mark.parametrize(("values", "code"), [
    ({"client_assertion": "a.b.c"}, "invalid_request"),
    ({"client_assertion_type": JWT_BEARER_ASSERTION}, "invalid_request"),
    ({"client_assertion": jwt({"alg": "ES256"}, {"iss": "c", "sub": "c"}),
      "client_assertion_type": "urn:example:other"}, "invalid_client"),
    ({"client_assertion": "not-a-jwt", "client_assertion_type": JWT_BEARER_ASSERTION},
     "invalid_client"),
    ({"client_assertion": "e30.W10.sig", "client_assertion_type": JWT_BEARER_ASSERTION},
     "invalid_client"),
    ({"client_assertion": jwt({"alg": "ES256"}, {"iss": "a", "sub": "b"}),
      "client_assertion_type": JWT_BEARER_ASSERTION}, "invalid_client"),
    ({"client_assertion": jwt({"alg": "ES256"}, {"iss": "a", "sub": "a"}),
      "client_assertion_type": JWT_BEARER_ASSERTION, "client_id": "b"}, "invalid_request"),
])
def test_bad_client_assertions(values: dict[str, str], code: str) -> None:
    assert err(extract(None, params(**values), False)).code == code


@pytest.mark.parametrize(("authorization", "values"), [
    (basic_rfc6749("a", "b"), {"client_id": "a", "client_secret": "b"}),
    (basic_rfc6749("a", "b"), {"client_assertion": "x.y.z",
                               "client_assertion_type": JWT_BEARER_ASSERTION}),
    (None, {"client_id": "a", "client_secret": "b", "client_assertion": "x.y.z",
            "client_assertion_type": JWT_BEARER_ASSERTION}),
])
def test_two_methods_are_invalid_request(authorization: str | None,
                                         values: dict[str, str]) -> None:
    error = err(extract(authorization, params(**values), False))
    assert (error.code, error.result_code) == ("invalid_request", "client.multiple_methods")


def test_body_client_id_must_match_basic() -> None:
    error = err(extract(basic_rfc6749("a", "b"), params(client_id="other"),
                                           False))
    assert (error.code, error.result_code) == ("invalid_request", "client.client_id_mismatch")
    assert ok(extract(basic_rfc6749("a", "b"), params(client_id="a"), False))


def test_certificate_alone_is_tls_client_auth() -> None:
    creds = ok(extract(None, params(client_id="m"), True))
    assert creds.method == "tls_client_auth"
    assert ok(extract(None, params(client_id="m"), False)).method == "none"


def test_client_id_outside_vschar_is_refused() -> None:
    assert err(extract(None, params(client_id="a\r\nb"), False)).code == \
        "invalid_request"


def test_secrets_never_appear_in_repr() -> None:
    creds = ok(extract(basic_rfc6749("a", "topsecret"), params(), False))
    assert "topsecret" not in repr(creds)
