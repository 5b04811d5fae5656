"""sidecar.core.resource.request: the credentials of an API call (RFC 6750 §2.1, RFC 9449
§7.1)."""

from __future__ import annotations

import pytest

from sidecar.core.resource.request import Credentials, ResourceRequest, read_credentials
from sidecar.errors import OAuthError


@pytest.mark.parametrize(("header", "scheme", "token"), [
    ("DPoP abc.def-ghi_~+/==", "DPoP", "abc.def-ghi_~+/=="),
    ("dpop abc", "DPoP", "abc"),
    ("Bearer abc", "Bearer", "abc"),
    ("BEARER   abc  ", "Bearer", "abc"),
])
def test_credentials_are_read(header: str, scheme: str, token: str) -> None:
    credentials = read_credentials((header,))
    assert isinstance(credentials, Credentials)
    assert (credentials.scheme, credentials.token) == (scheme, token)
    assert token not in repr(credentials)


@pytest.mark.parametrize("headers", [(), ("Basic dXNlcjpwYXNz",), ("Negotiate x",)])
def test_no_credentials_of_a_known_scheme(headers: tuple[str, ...]) -> None:
    assert read_credentials(headers) is None


@pytest.mark.parametrize(("headers", "result_code"), [
    (("DPoP a", "DPoP b"), "resource.multiple_authorization"),
    (("DPoP",), "resource.malformed_authorization"),
    (("Bearer a b",), "resource.malformed_authorization"),
    (("Bearer a\"b",), "resource.malformed_authorization"),
    (("DPoP =abc",), "resource.malformed_authorization"),
    (("Bearer " + "a" * 16385,), "resource.malformed_authorization"),
])
def test_malformed_credentials_are_invalid_request(headers: tuple[str, ...],
                                                   result_code: str) -> None:
    error = read_credentials(headers)
    assert isinstance(error, OAuthError)
    assert (error.code, error.status, error.result_code) == ("invalid_request", 400, result_code)


def test_a_request_hides_its_credentials() -> None:
    request = ResourceRequest("GET", "/api/x", ("DPoP secret-token",), ("proof",))
    assert "secret-token" not in repr(request) and "proof" not in repr(request)
