"""The token and PAR endpoints' query string (sidecar/core/query.py, RFC 6749 §3.2)."""

from __future__ import annotations

import pytest

from sidecar.core.query import TOKEN_REQUEST_PARAMETERS, as_parsers_read, check_query
from sidecar.errors import OAuthError

ALLOWED = frozenset({"tenant", "realm"})


@pytest.mark.parametrize("query", [
    None, "", "tenant=a", "tenant=a&realm=b", "tenant=", "tenant", "tenant=a&&realm=b&",
    "tenant=%C3%A9+x", "tenant=a=b",
])
def test_listed_components_pass(query: str | None) -> None:
    assert check_query(query, ALLOWED) is None


@pytest.mark.parametrize(("query", "result_code"), [
    ("grant_type=password", "request.query_token_parameter"),
    ("tenant=a&refresh_token=rt", "request.query_token_parameter"),
    ("GRANT_TYPE=password", "request.query_token_parameter"),  # ASP.NET ignores case
    ("grant.type=password", "request.query_token_parameter"),  # PHP: '.' becomes '_'
    ("grant+type=password", "request.query_token_parameter"),  # PHP: ' ' becomes '_'
    ("grant_type[]=password", "request.query_token_parameter"),  # PHP arrays
    ("grant%5Ftype=password", "request.query_token_parameter"),
    ("%20client_id=x", "request.query_token_parameter"),
    ("tenant=a;grant_type=password", "request.query_token_parameter"),  # ';' separators
    ("subject_token=x", "request.query_token_parameter"),
    ("dpop_jkt=x", "request.query_token_parameter"),
    ("request_uri=urn:x", "request.query_token_parameter"),
    ("code", "request.query_token_parameter"),
    ("other=1", "request.query_not_allowed"),
    ("Tenant=a", "request.query_not_allowed"),  # listed names are matched exactly
    ("=a", "request.query_not_allowed"),
    ("tenant=%zz", "request.query_encoding"),
    ("ten%ant=a", "request.query_encoding"),
    ("tenant=%FF", "request.query_encoding"),
])
def test_other_components_are_invalid_request(query: str, result_code: str) -> None:
    refused = check_query(query, ALLOWED)
    assert isinstance(refused, OAuthError)
    assert (refused.status, refused.code, refused.result_code) == \
        (400, "invalid_request", result_code)


def test_the_refusal_names_the_parameter_in_the_log_only() -> None:
    refused = check_query("password=hunter2", frozenset())
    assert isinstance(refused, OAuthError)
    assert "password" in refused.detail
    assert "hunter2" not in refused.detail + refused.description


def test_every_parameter_the_sidecar_reads_is_a_token_request_parameter() -> None:
    read = {"grant_type", "client_id", "client_secret", "client_assertion",
            "client_assertion_type", "assertion", "code", "code_verifier", "redirect_uri",
            "refresh_token", "scope", "username", "password", "resource", "audience",
            "subject_token", "subject_token_type", "actor_token", "actor_token_type",
            "requested_token_type", "authorization_details", "dpop_jkt", "device_code",
            "auth_req_id", "device_secret", "tx_code", "pre-authorized_code"}
    assert read <= TOKEN_REQUEST_PARAMETERS
    assert all(as_parsers_read(name) == name for name in TOKEN_REQUEST_PARAMETERS)
