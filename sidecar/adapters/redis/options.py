"""How to connect (`RedisOptions`): the `[store]` settings, the credentials of the URL merged
with those of the files, the TLS files loaded once at start."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

from sidecar.adapters.redis.urls import SENTINEL_SCHEME, RedisURL
from sidecar.settings import StoreSettings

DEFAULT_SOCKET_CONNECT_TIMEOUT = 0.1
DEFAULT_SOCKET_TIMEOUT = 0.1
DEFAULT_POOL_TIMEOUT = 0.1
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_CLIENT_NAME = "token-sidecar"
DEFAULT_WARM_CONNECTIONS = 8
DEFAULT_KEEPALIVE_SECONDS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisOptions:
    """How to connect, for every deployment (a password is never shown by repr)."""

    socket_connect_timeout: float = DEFAULT_SOCKET_CONNECT_TIMEOUT
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    pool_timeout: float = DEFAULT_POOL_TIMEOUT
    client_name: str | None = DEFAULT_CLIENT_NAME
    warm_connections: int = DEFAULT_WARM_CONNECTIONS
    keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_password: str | None = field(default=None, repr=False)
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


class RedisOptionArgs(TypedDict, total=False):
    """RedisOptions as keyword arguments (RedisStore's constructors take them)."""

    socket_connect_timeout: float
    socket_timeout: float
    max_connections: int
    pool_timeout: float
    client_name: str | None
    warm_connections: int
    keepalive_seconds: float
    username: str | None
    password: str | None
    sentinel_password: str | None
    ssl_ca_certs: str | None
    ssl_certfile: str | None
    ssl_keyfile: str | None


def merge_credentials(url: RedisURL, options: RedisOptions) -> RedisOptions:
    if url.password and options.password:
        raise ValueError("store.url carries a password and store.password_file is set: "
                         "give the password in one place")
    if url.username and options.username and url.username != options.username:
        raise ValueError("store.url and store.username name different users")
    if options.sentinel_password and url.scheme != SENTINEL_SCHEME:
        raise ValueError("store.sentinel_password_file is only for redis+sentinel://")
    tls_files = {"store.tls_ca_file": options.ssl_ca_certs,
                 "store.tls_cert_file": options.ssl_certfile,
                 "store.tls_key_file": options.ssl_keyfile}
    if not url.tls:
        for name, value in tls_files.items():
            if value:
                raise ValueError(f"{name} is set but store.url does not use TLS (use "
                                 "rediss://, or tls=true for Sentinel and Cluster)")
    else:
        _check_tls_files(options)
    return replace(options, username=options.username or url.username,
                   password=options.password or url.password)


def _check_tls_files(options: RedisOptions) -> None:
    """Load the TLS files once at start, so that a wrong path fails `check-config`, not every
    request. An encrypted key is refused here (OpenSSL would prompt for its passphrase)."""
    if options.ssl_keyfile and not options.ssl_certfile:
        raise ValueError("store.tls_key_file is set without store.tls_cert_file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if options.ssl_ca_certs:
        try:
            context.load_verify_locations(cafile=options.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"store.tls_ca_file: cannot load {options.ssl_ca_certs!r}: "
                             f"{_reason(exc)}") from None
    if options.ssl_certfile:
        try:
            context.load_cert_chain(options.ssl_certfile, options.ssl_keyfile,
                                    password=lambda: b"")
        except (OSError, ssl.SSLError) as exc:
            raise ValueError("store.tls_cert_file/store.tls_key_file: cannot load the client "
                             f"certificate and its unencrypted key: {_reason(exc)}") from None


def _reason(exc: OSError | ssl.SSLError) -> str:
    return exc.strerror or getattr(exc, "reason", None) or type(exc).__name__


def options_from(settings: StoreSettings) -> RedisOptions:
    return RedisOptions(
        socket_connect_timeout=settings.connect_timeout_seconds,
        socket_timeout=settings.command_timeout_seconds,
        max_connections=settings.max_connections,
        # Waiting for a free connection costs at most one more connect-and-command.
        pool_timeout=settings.connect_timeout_seconds + settings.command_timeout_seconds,
        warm_connections=settings.warm_connections,
        keepalive_seconds=settings.keepalive_seconds,
        username=settings.username or None,
        password=read_secret_file(settings.password_file, "store.password_file"),
        sentinel_password=read_secret_file(settings.sentinel_password_file,
                                           "store.sentinel_password_file"),
        ssl_ca_certs=settings.tls_ca_file or None,
        ssl_certfile=settings.tls_cert_file or None,
        ssl_keyfile=settings.tls_key_file or None,
    )


def read_secret_file(path: str, name: str) -> str | None:
    """The secret in `path` without its trailing newline; None when `path` is empty."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path!r} is not UTF-8 text") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{name}: {path!r} is empty")
    return secret
