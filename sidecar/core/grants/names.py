"""Grant type and token type identifiers, and what validating a grant returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar.model import Action

Context = tuple[tuple[str, str], ...]


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class GrantResult:
    grant_type: Final[str]
    action: Final[Action]
    # Extra context headers, names without the configured prefix ("Device-Secret-Hash", ...).
    context: Final[Context] = ()


AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name
CLIENT_CREDENTIALS = "client_credentials"
PASSWORD = "password"  # noqa: S105 - a grant type name
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CIBA = "urn:openid:params:grant-type:ciba"
PRE_AUTHORIZED_CODE = "urn:ietf:params:oauth:grant-type:pre-authorized_code"

# OpenID Connect Native SSO for Mobile Apps 1.0: the actor_token_type of a device secret.
DEVICE_SECRET_TOKEN_TYPE = "urn:openid:params:token-type:device-secret"  # noqa: S105

REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105 - a URI

# RFC 8693 §3 token type identifiers, plus the Native SSO device secret.
TOKEN_TYPES = frozenset({
    "urn:ietf:params:oauth:token-type:access_token",
    REFRESH_TOKEN_TYPE,
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    "urn:ietf:params:oauth:token-type:jwt",
    DEVICE_SECRET_TOKEN_TYPE,
})

# Nesting bound for authorization_details (arrays and objects). RFC 9396 types seen in the
# wild (openid_credential, payment_initiation, ...) stay well under it.
MAX_AUTHORIZATION_DETAILS_DEPTH = 32

DEVICE_SECRET_HASH = "Device-Secret-Hash"  # noqa: S105 - a header name
