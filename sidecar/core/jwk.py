"""Moved to `sidecar.core.jose.keys` (and `jose.compact`); these names stay importable
for the shell, the benchmark and the tests until they import from there."""

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.jose.compact import b64url_decode, b64url_encode, strict_json_object
from sidecar.core.jose.keys import (
    MAX_JWK_JSON_LENGTH,
    PRIVATE_MEMBERS,
    REQUIRED_MEMBERS,
    JwkError,
    PublicKey,
    PublicKeyInfo,
    clear_cache,
    public_key,
    thumbprint,
)

__all__ = ["MAX_JWK_JSON_LENGTH", "PRIVATE_MEMBERS", "REQUIRED_MEMBERS", "BoundedCache",
           "JwkError", "PublicKey", "PublicKeyInfo", "b64url_decode", "b64url_encode",
           "clear_cache", "public_key", "strict_json_object", "thumbprint"]
