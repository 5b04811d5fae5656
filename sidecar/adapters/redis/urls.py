"""The `store.url` grammar of the three deployments: `redis://` and `rediss://` (standalone),
`redis+sentinel://` and `redis+cluster://`. Errors name `store.url` and quote nothing of the
URL but its scheme and query parameter names: a piece of it could be a password."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import parse_qsl, unquote

from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS

Deployment = Literal["standalone", "sentinel", "cluster"]

STANDALONE_SCHEMES = ("redis", "rediss")
SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"
SCHEMES = (*STANDALONE_SCHEMES, SENTINEL_SCHEME, CLUSTER_SCHEME)
DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, SENTINEL_SCHEME: 26379, CLUSTER_SCHEME: 6379}


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_PORT = re.compile(r"[0-9]{1,5}")
_QUERY_NAME = re.compile(r"[a-z_]{1,40}")
# What redis-py reads from a redis:// query string (anything else would reach its Connection
# as an unknown argument and fail every command).
_STANDALONE_QUERY = (*URL_QUERY_ARGUMENT_PARSERS, "client_name")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class RedisURL:
    """A parsed `store.url` (the password is never shown by repr)."""

    scheme: str
    hosts: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service_name: str | None = None  # redis+sentinel://
    db: int = 0
    tls: bool = False
    # Standalone only: query options handed to redis-py as they are (`?socket_timeout=0.5`).
    options: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def deployment(self) -> Deployment:
        if self.scheme == SENTINEL_SCHEME:
            return "sentinel"
        if self.scheme == CLUSTER_SCHEME:
            return "cluster"
        return "standalone"


def url_scheme(url: str) -> str:
    """The scheme of `url`, lower-cased ('' when there is none)."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return match.group(1).lower() if match else ""


def parse_url(url: str) -> RedisURL:
    """Parse a `store.url` of any Redis scheme, or raise ValueError naming `store.url`.

    No message quotes any part of the URL but its scheme and query parameter names.
    """
    scheme = url_scheme(url)
    if scheme not in SCHEMES:
        raise ValueError(f"store.url: the scheme must be one of {', '.join(SCHEMES)}")
    rest = url[len(scheme) + 3:]
    # The user part runs to the last "@": the password may contain "@", "/", "?" or "#".
    userinfo, at, rest = rest.rpartition("@")
    if "#" in rest:
        raise ValueError("store.url: a fragment (#...) is not allowed")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    hosts = _parse_hosts(netloc, scheme)
    username, password = _parse_userinfo(userinfo) if at else (None, None)
    params = _parse_query(query, scheme)
    parsed = RedisURL(scheme, hosts, username, password)

    if scheme in STANDALONE_SCHEMES:
        if len(hosts) > 1:
            raise ValueError(f"store.url: {scheme}:// takes one host; for several use "
                             "redis+sentinel:// or redis+cluster://")
        if path and not _PORT.fullmatch(path):
            raise ValueError("store.url: the path must be a database number, as in /0")
        return replace(parsed, db=int(path or 0), tls=scheme == "rediss",
                       options=tuple(params.items()))

    tls = _flag(params.get("tls", "false"))
    if scheme == SENTINEL_SCHEME:
        service = unquote(path)
        if not service or "/" in service:
            raise ValueError("store.url: redis+sentinel:// needs the service name as its path, "
                             "as in redis+sentinel://host:26379/mymaster")
        db = params.get("db", "0")
        if not _PORT.fullmatch(db):
            raise ValueError("store.url: the db query parameter must be a database number")
        return replace(parsed, service_name=service, db=int(db), tls=tls)

    if path:
        raise ValueError("store.url: redis+cluster:// takes no path (a Cluster has only "
                         "database 0)")
    return replace(parsed, tls=tls)


def _parse_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, has_password, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if has_password and password else None)


def _parse_hosts(netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    if not netloc:
        raise ValueError("store.url: no host")
    items = netloc.split(",")
    hosts: list[tuple[str, int]] = []
    for number, item in enumerate(items, 1):
        where = f"store.url: host {number} of {len(items)}"
        if item.startswith("["):
            host, closed, after = item[1:].partition("]")
            if not closed:
                raise ValueError(f"{where}: '[' without ']'")
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise ValueError(f"{where}: not an IPv6 address inside [...]") from None
            if after and not after.startswith(":"):
                raise ValueError(f"{where}: expected ':port' after ']'")
            port = after[1:] if after else None
        else:
            if item.count(":") > 1:
                raise ValueError(f"{where}: an IPv6 address must be in brackets, as in "
                                 "[::1]:6379")
            host, has_port, port_text = item.partition(":")
            port = port_text if has_port else None
            if not host:
                raise ValueError(f"{where}: empty host name")
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"{where}: not a valid host name or IPv4 address")
        if port is None:
            hosts.append((host, DEFAULT_PORTS[scheme]))
        elif _PORT.fullmatch(port) and 0 < int(port) < 65536:
            hosts.append((host, int(port)))
        else:
            raise ValueError(f"{where}: the port must be a number from 1 to 65535")
    return tuple(hosts)


def _parse_query(query: str, scheme: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError("store.url: the query string is not name=value pairs") from None
    known = {SENTINEL_SCHEME: ("db", "tls"), CLUSTER_SCHEME: ("tls",)}.get(
        scheme, _STANDALONE_QUERY)
    params: dict[str, str] = {}
    for name, value in pairs:
        shown = repr(name) if _QUERY_NAME.fullmatch(name) else "a query parameter"
        if name in params:
            raise ValueError(f"store.url: {shown} is given twice")
        if name not in known:
            raise ValueError(f"store.url: unknown query parameter {shown} for {scheme}:// "
                             f"(known: {', '.join(known)})")
        params[name] = value
    return params


def _flag(value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError("store.url: tls must be true or false")
