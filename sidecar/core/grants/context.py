"""What the upstream is told about a grant: the Native SSO device-secret hash (OpenID Connect
Native SSO for Mobile Apps 1.0)."""

from __future__ import annotations

import hashlib

from sidecar import errors
from sidecar.core.grants.names import (
    DEVICE_SECRET_HASH,
    DEVICE_SECRET_TOKEN_TYPE,
    TOKEN_EXCHANGE,
    Context,
)
from sidecar.core.grants.params import single_value
from sidecar.core.jose.compact import b64url_encode
from sidecar.errors import OAuthError
from sidecar.model import FormParams


def device_secret_hash(device_secret: str) -> str:
    """base64url without padding of SHA-256 of the device secret's UTF-8 bytes."""
    # surrogatepass: a str built by hand may hold a lone surrogate; hashing must not raise.
    digest = hashlib.sha256(device_secret.encode("utf-8", "surrogatepass")).digest()
    return b64url_encode(digest)


def native_sso_context(params: FormParams, grant_type: str) -> Context | OAuthError:
    # OpenID Connect Native SSO for Mobile Apps 1.0: in the token exchange profile the
    # device secret is the actor_token, typed urn:openid:params:token-type:device-secret.
    # Earlier drafts sent it as a device_secret parameter (with the authorization_code and
    # refresh_token grants too), so that parameter is honoured on any grant. The upstream
    # gets the hash, which is what the ID token's ds_hash binds to, never the secret.
    secret = single_value(params, "device_secret")
    if isinstance(secret, OAuthError):
        return secret
    if grant_type == TOKEN_EXCHANGE and params.get_all("actor_token_type") == (
            DEVICE_SECRET_TOKEN_TYPE,):
        actor = single_value(params, "actor_token")  # checked by the rule, present and single
        if isinstance(actor, str):
            if secret is not None and secret != actor:
                return errors.invalid_request(
                    "device_secret.conflict",
                    "The device_secret and the device-secret actor_token differ.",
                )
            secret = actor
    if secret is None:
        return ()
    return ((DEVICE_SECRET_HASH, device_secret_hash(secret)),)
