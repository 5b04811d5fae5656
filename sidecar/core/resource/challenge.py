"""The `WWW-Authenticate` challenges of the resource side (RFC 6750 §3, RFC 9449 §7.1).

A refusal of a request made with the DPoP scheme is answered with a `DPoP` challenge that
names the error and the accepted algorithms (`algs`, RFC 9449 §7.1); one made with `Bearer`
with a `Bearer` challenge (RFC 6750 §3), and a `DPoP` challenge beside it so the client
learns the scheme it should use. A request without credentials gets the challenges without
an error code (RFC 6750 §3.1). The access token never appears in a challenge.
"""

from __future__ import annotations

import re
from typing import Final

from sidecar.core.resource.request import Scheme
from sidecar.errors import OAuthError

WWW_AUTHENTICATE: Final = "WWW-Authenticate"
# RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E, no quote, no backslash.
_NOT_QUOTABLE: Final = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def _quoted(value: str) -> str:
    return '"' + _NOT_QUOTABLE.sub("", value) + '"'


def _challenge(scheme: Scheme, params: list[tuple[str, str]]) -> str:
    if not params:
        return scheme
    return scheme + " " + ", ".join(f"{name}={_quoted(value)}" for name, value in params)


def dpop_challenge(algs: str, error: OAuthError | None = None,
                   scope: str = "") -> str:
    params = _error_params(error, scope)
    params.append(("algs", algs))  # RFC 9449 §7.1: space-delimited JWS alg values
    return _challenge("DPoP", params)


def bearer_challenge(error: OAuthError | None = None, scope: str = "") -> str:
    return _challenge("Bearer", _error_params(error, scope))


def _error_params(error: OAuthError | None, scope: str) -> list[tuple[str, str]]:
    if error is None:
        return []
    params = [("error", error.code), ("error_description", error.description)]
    if scope:
        params.append(("scope", scope))  # RFC 6750 §3: the scope the request needs
    return params


def challenged(error: OAuthError, scheme: Scheme | None, *, algs: str, bearer_allowed: bool,
               scope: str = "", credentials_sent: bool = True) -> OAuthError:
    """`error` with its challenges added. `scheme` is how the token was presented (None:
    unknown, or not at all when `credentials_sent` is false: then no error code, RFC 6750
    §3.1). A server-side failure (5xx) carries no challenge: it is no verdict on the
    credentials."""
    if error.status >= 500:
        return error
    if scheme is None:
        named = error if credentials_sent else None
        headers = [dpop_challenge(algs, named)]
        if bearer_allowed:
            headers.append(bearer_challenge(named))
    elif scheme == "DPoP":
        headers = [dpop_challenge(algs, error, scope)]
    else:
        headers = [bearer_challenge(error, scope), dpop_challenge(algs)]
    return error.with_headers(*((WWW_AUTHENTICATE, value) for value in headers))
