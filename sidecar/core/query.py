"""The query string of the token and PAR endpoints.

RFC 6749 §3.2 lets the endpoint URI carry a query, but the request's parameters go in the
body: the sidecar checks the body only. An upstream that reads parameters from the query
too (Servlet `getParameter`, ASP.NET `Request[]`, PHP `$_REQUEST`) would act on one the
sidecar never saw: a `grant_type` it refuses, a `refresh_token` whose binding it checked for
another token. So a query component named like a token-request parameter, in any spelling
such a parser folds to one, is `invalid_request`; any other component passes only when the
operator listed its name (`server.token_query_allowed`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from sidecar import errors
from sidecar.core.form import decode_component
from sidecar.errors import OAuthError

TOKEN_REQUEST_PARAMETERS: Final = frozenset({
    # RFC 6749 §2.3.1, §4.1.1, §4.1.3, §4.3.2, §4.4.2, §6
    "grant_type", "code", "redirect_uri", "client_id", "client_secret", "username",
    "password", "scope", "refresh_token", "response_type", "state",
    # RFC 7636 §4.3, §4.5 (PKCE)
    "code_verifier", "code_challenge", "code_challenge_method",
    # RFC 7521 §4.1, §4.2 and RFC 7523 §2
    "assertion", "client_assertion", "client_assertion_type",
    # RFC 8693 §2.1 and RFC 8707 §2
    "resource", "audience", "requested_token_type", "subject_token", "subject_token_type",
    "actor_token", "actor_token_type",
    # RFC 9396 §2, RFC 9449 §10, RFC 9126 §2.1 with RFC 9101 §5
    "authorization_details", "dpop_jkt", "request", "request_uri",
    # RFC 8628 §3.4, OpenID CIBA §10.1, OpenID Native SSO §4.1, OpenID4VCI §6.1
    "device_code", "auth_req_id", "device_secret", "pre-authorized_code", "tx_code",
    "user_pin", "issuer_state",
    # OpenID Connect Core §3.1.2.1 (pushed with PAR)
    "nonce", "response_mode", "prompt", "max_age", "login_hint", "id_token_hint",
    "acr_values", "claims", "display", "ui_locales", "claims_locales", "registration",
    # RFC 7009 §2.1, RFC 7662 §2.1 (the introspection and revocation paths)
    "token", "token_type_hint",
})

_ARRAY_SUFFIX = re.compile(r"\[.*$")


def as_parsers_read(name: str) -> str:
    """A parameter name as lenient parsers read it: ASP.NET ignores case, PHP turns ' ' and
    '.' into '_' and `name[]` into `name`, some trim whitespace."""
    folded = unicodedata.normalize("NFKC", name).casefold().strip()
    return _ARRAY_SUFFIX.sub("", folded).replace(" ", "_").replace(".", "_")


def is_token_request_parameter(name: str) -> bool:
    return as_parsers_read(name) in TOKEN_REQUEST_PARAMETERS


def check_query(query: str | None, allowed: frozenset[str]) -> OAuthError | None:
    """None when every component of the endpoint's query is allowed, else the refusal."""
    if not query:
        return None
    # ';' separates parameters for some parsers (old CGI, Python before 3.10): split on both.
    for component in re.split("[&;]", query):
        if not component:
            continue
        raw_name, _, raw_value = component.partition("=")
        name = decode_component(raw_name.encode())
        value = decode_component(raw_value.encode())
        if isinstance(name, OAuthError) or isinstance(value, OAuthError):
            return errors.invalid_request("request.query_encoding",
                                          "The query has a malformed percent-escape.")
        if is_token_request_parameter(name):
            return errors.invalid_request(
                "request.query_token_parameter",
                "Token request parameters must be sent in the body, not in the query.",
                detail=f"query parameter {name[:40]!r}")
        if name not in allowed:
            return errors.invalid_request(
                "request.query_not_allowed", "The endpoint's URL takes no such query parameter.",
                detail=f"query parameter {name[:40]!r}")
    return None
