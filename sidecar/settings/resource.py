"""`[resource]`: the resource side (README "The resource side"), and the checks only its
keys use."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.settings import checks
from sidecar.settings.keys import key


def _origin(value: str) -> str | None:
    """`scheme://host[:port]`, nothing after it: the htu of a resource-side proof is this
    origin and the request's path (README "The resource side")."""
    problem = checks.http_url(value)
    if problem is not None or not value:
        return problem
    parts = urlsplit(value)
    if parts.path not in ("", "/") or parts.query or "?" in value or "@" in parts.netloc:
        return f"expected an origin (scheme://host[:port]) without path or query, got {value!r}"
    return None


def _prefixes(values: tuple[str, ...]) -> str | None:
    for value in values:
        if not value.startswith("/"):
            return f"expected paths starting with '/', got {value!r}"
        problem = checks.path(value)
        if problem is not None:
            return problem
    return None


_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")  # RFC 6749 §3.3 scope-token


def _scopes(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if not _SCOPE_TOKEN.fullmatch(v)]
    return f"not scope tokens (RFC 6749 §3.3): {bad!r}" if bad else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceSettings:
    """The resource side (README "The resource side"): API calls checked against the
    binding of their access token (RFC 9449 §7, RFC 8705 §3), inline or for a proxy."""

    enabled: bool = key(False)
    public_origin: str = key("", _origin)  # the htu of a proof is public_origin + path
    prefixes: tuple[str, ...] = key((), _prefixes)  # inline: checked, then to upstream_url
    upstream_url: str = key("", checks.upstream_url)
    # The check listener: Envoy ext_authz, nginx auth_request, Traefik forwardAuth.
    check_listen: str = key("", checks.optional_listen)
    nonce_required: bool = key(False)
    # Empty: dpop.nonce_secret_file (the resource nonces are told apart from the token
    # endpoint's all the same, sidecar.core.nonces `purpose`).
    nonce_secret_file: str = key("", path=True)
    # An unbound token sent as Bearer: let it through ("allow", a mixed fleet keeps
    # working) or refuse it ("deny"). A bound token sent as Bearer is always refused.
    bearer: str = key("allow", checks.one_of("allow", "deny"))
    required_scopes: tuple[str, ...] = key((), _scopes)
    # Token sources besides the recorded bindings: JWT access tokens (RFC 9068) verified
    # against these keys, and the upstream's introspection (RFC 7662) with the resource
    # server's credentials (a file), answers cached at most this long.
    jwks_uri: str = key("", checks.http_url_without_credentials)
    introspection_url: str = key("", checks.http_url_without_credentials)
    introspection_credentials_file: str = key("", path=True)
    introspection_cache_seconds: int = key(300, checks.non_negative)
    # JWT access tokens typed "JWT" or not typed at all, besides RFC 9068's "at+jwt" (many
    # servers type them so); never another explicit type. Set jwt_audiences with it.
    jwt_allow_plain_typ: bool = key(False)
    # RFC 9068 §4: the `aud` a JWT access token must name one of; empty: not checked.
    jwt_audiences: tuple[str, ...] = key(())
