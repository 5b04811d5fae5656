"""The value checks of the config keys: each returns a human sentence describing the problem,
or None when the value is fine. `key(default, check)` attaches one to a key."""

from __future__ import annotations

import ipaddress
import re
import typing
from typing import Any
from urllib.parse import urlsplit

from sidecar.core.query import is_token_request_parameter
from sidecar.core.target import read_target
from sidecar.errors import OAuthError
from sidecar.settings.keys import Check


def listen(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT, got {value!r}"
    return None


def optional_listen(value: str) -> str | None:
    return listen(value) if value else None


def http_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an absolute http(s) URL, got {value!r}"
    if parts.fragment:
        return f"a URL with a fragment is not allowed, got {value!r}"
    return None


def http_url_without_credentials(value: str) -> str | None:
    """An http(s) URL with no `user:password@`: the URL goes into log lines (a source that
    cannot answer names it), a password must not. The value is not repeated in the message."""
    if value and (urlsplit(value).username is not None or urlsplit(value).password is not None):
        return "a URL must not hold credentials (user:password@); use the credentials file"
    return http_url(value)


def path(value: str) -> str | None:
    if value and not value.startswith("/"):
        return f"expected a path starting with '/', got {value!r}"
    # A path the sidecar refuses as a request target could never be reached.
    target = read_target(value) if value else None
    if isinstance(target, OAuthError):
        return f"{target.description} Got {value!r}"
    if target is not None and target.query is not None:
        return f"a path without a query, got {value!r}"
    return None


def upstream_url(value: str) -> str | None:
    problem = http_url(value)
    parts = urlsplit(value)
    if problem is None and (parts.query or "?" in value):
        problem = f"a URL with a query is not allowed, got {value!r}"
    if problem is None and "@" in parts.netloc:
        # The client's Authorization header goes upstream; credentials in the URL would clash.
        problem = "a URL with user info is not allowed"
    return problem


def query_names(values: tuple[str, ...]) -> str | None:
    token_parameters = [v for v in values if is_token_request_parameter(v)]
    if token_parameters:
        return (f"{token_parameters!r} read as token request parameters, which are only "
                "accepted in the body")
    if "" in values:
        return "an empty name is not allowed"
    return None


def cidrs(values: tuple[str, ...]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"not a CIDR network: {value!r}"
    return None


def positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must not be negative, got {value!r}"


def at_most(limit: float) -> Check:
    def check(value: float) -> str | None:
        if not 0 < value <= limit:
            return f"must be greater than 0 and at most {limit:g}, got {value!r}"
        return None

    return check


def one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def one_of_literal(choices: Any) -> Check:
    """The check of a mode setting typed `Literal[...]`: one of the Literal's values."""
    return one_of(*typing.get_args(choices))


def subset_of(*choices: str) -> Check:
    def check(values: tuple[str, ...]) -> str | None:
        unknown = [v for v in values if v not in choices]
        return f"unknown values {unknown!r}; allowed: {', '.join(choices)}" if unknown else None

    return check


# RFC 9110 §5.6.2 token (without `*`), and an optional `*` that makes it a prefix.
_HEADER_NAME = re.compile(r"[!#$%&'+.^_`|~0-9A-Za-z-]+\*?")


def header_names(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if not _HEADER_NAME.fullmatch(v)]
    return f"not header names (a trailing * makes a prefix): {bad!r}" if bad else None


def store_url(value: str) -> str | None:
    schemes = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")
    scheme = urlsplit(value).scheme
    return None if scheme in schemes else f"scheme must be one of {', '.join(schemes)}"
