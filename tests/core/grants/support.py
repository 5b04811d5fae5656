"""Grant requests for the tests: forms, unverified JWTs, and the accepted/refused checks."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

from sidecar.core.grants.names import GrantResult
from sidecar.core.grants.validate import validate_grant
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import GrantsSettings

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


# A minimal valid request of each grant type.
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
