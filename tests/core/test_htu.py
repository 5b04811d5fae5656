"""htu normalisation (sidecar.core.htu; RFC 9449 §4.3, RFC 3986 §6.2.2, §6.2.3)."""

from __future__ import annotations

import pytest

from sidecar.core.htu import normalize_htu


@pytest.mark.parametrize(("url", "expected"), [
    ("https://as.example.com/token", "https://as.example.com/token"),
    ("HTTPS://AS.EXAMPLE.COM/token", "https://as.example.com/token"),
    ("https://as.example.com:443/token", "https://as.example.com/token"),
    ("http://as.example.com:80/token", "http://as.example.com/token"),
    ("http://as.example.com:443/token", "http://as.example.com:443/token"),
    ("https://as.example.com:8443/token", "https://as.example.com:8443/token"),
    ("https://as.example.com:/token", "https://as.example.com/token"),
    ("https://as.example.com", "https://as.example.com/"),
    ("https://as.example.com?x", "https://as.example.com/"),
    ("https://as.example.com/token?a=b#c", "https://as.example.com/token"),
    ("https://as.example.com/token#c?d", "https://as.example.com/token"),
    ("https://as.example.com/token?a b", "https://as.example.com/token"),  # query not parsed
    ("https://as.example.com/%7etoken", "https://as.example.com/~token"),
    ("https://as.example.com/a%2fb", "https://as.example.com/a%2Fb"),
    ("https://as.example.com/./a/../b/.", "https://as.example.com/b/"),
    ("https://as.example.com/%2E%2E/b", "https://as.example.com/b"),
    ("https://as.example.com/a//b", "https://as.example.com/a//b"),
    ("https://as.example.com/TOKEN", "https://as.example.com/TOKEN"),  # path is case-sensitive
    ("https://[2001:DB8::1]:443/t", "https://[2001:db8::1]/t"),
    ("https://[::1]:8443/t", "https://[::1]:8443/t"),
    ("https://127.0.0.1/t", "https://127.0.0.1/t"),
    ("https://as.example.com:0443/t", "https://as.example.com/t"),
    # Not an absolute http(s) URI without userinfo:
    ("/token", None), ("as.example.com/token", None), ("ftp://as.example.com/", None),
    ("https:as.example.com/token", None), ("https:///token", None), ("https://", None),
    ("https://user@as.example.com/", None), ("https://u:p@as.example.com/", None),
    ("https://as.example.com:99999/", None), ("https://as.example.com:x/", None),
    ("https://as.example.com:-1/", None), ("https://[::1/t", None), ("https://[]/t", None),
    ("https://a]b/t", None), ("https://[::1]x/t", None),
    ("https://as.example.com/a%zz", None), ("https://as.example.com/a%", None),
    ("https://as.example.com/a%4", None), ("https://as%2eexample.com/", None),
    ("https://as.example.com/to\tken", None), ("https://as.example.com/to\nken", None),
    ("https://as.example.com/to ken", None), ("https://as.exämple.com/", None),
    ("https://as.example.com/" + "a" * 3000, None), ("", None),
])
def test_normalize_htu(url: str, expected: str | None) -> None:
    assert normalize_htu(url) == expected


def test_normalize_htu_not_a_string() -> None:
    assert normalize_htu(123) is None  # type: ignore[arg-type]
