"""Typed configuration: TOML file, environment overrides, validation that names the key.

Each `[section]` of the file is a frozen dataclass below; the field names are the config keys
that users and integrations rely on (README "Configuration"). Every scalar or list key can be
overridden by `TOKEN_SIDECAR_<SECTION>_<KEY>` (lists as a JSON array or comma-separated).
Validation collects every problem, each prefixed with its dotted key, instead of stopping at
the first, so `check-config` can print them all.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, overload
from urllib.parse import urlsplit

from sidecar.core.query import is_token_request_parameter
from sidecar.core.target import read_target
from sidecar.errors import OAuthError

ENV_PREFIX = "TOKEN_SIDECAR_"
REQUIRED: Any = dataclasses.MISSING

Check = Callable[[Any], str | None]  # returns a problem, or None when the value is fine


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# ---------------------------------------------------------------------------------------
# Checks: each returns a human sentence describing the problem, or None.


def _listen(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT, got {value!r}"
    return None


def _optional_listen(value: str) -> str | None:
    return _listen(value) if value else None


def _http_url(value: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"expected an absolute http(s) URL, got {value!r}"
    if parts.fragment:
        return f"a URL with a fragment is not allowed, got {value!r}"
    return None


def _path(value: str) -> str | None:
    if value and not value.startswith("/"):
        return f"expected a path starting with '/', got {value!r}"
    # A path the sidecar refuses as a request target could never be reached.
    target = read_target(value) if value else None
    if isinstance(target, OAuthError):
        return f"{target.description} Got {value!r}"
    if target is not None and target.query is not None:
        return f"a path without a query, got {value!r}"
    return None


def _upstream_url(value: str) -> str | None:
    problem = _http_url(value)
    parts = urlsplit(value)
    if problem is None and (parts.query or "?" in value):
        problem = f"a URL with a query is not allowed, got {value!r}"
    if problem is None and "@" in parts.netloc:
        # The client's Authorization header goes upstream; credentials in the URL would clash.
        problem = "a URL with user info is not allowed"
    return problem


def _query_names(values: tuple[str, ...]) -> str | None:
    token_parameters = [v for v in values if is_token_request_parameter(v)]
    if token_parameters:
        return (f"{token_parameters!r} read as token request parameters, which are only "
                "accepted in the body")
    if "" in values:
        return "an empty name is not allowed"
    return None


def _cidrs(values: tuple[str, ...]) -> str | None:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return f"not a CIDR network: {value!r}"
    return None


def _positive(value: float) -> str | None:
    return None if value > 0 else f"must be greater than 0, got {value!r}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else f"must not be negative, got {value!r}"


def _at_most(limit: float) -> Check:
    def check(value: float) -> str | None:
        if not 0 < value <= limit:
            return f"must be greater than 0 and at most {limit:g}, got {value!r}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}; got {value!r}"

    return check


def _one_of_literal(choices: Any) -> Check:
    """The check of a mode setting typed `Literal[...]`: one of the Literal's values."""
    return _one_of(*typing.get_args(choices))


def _subset_of(*choices: str) -> Check:
    def check(values: tuple[str, ...]) -> str | None:
        unknown = [v for v in values if v not in choices]
        return f"unknown values {unknown!r}; allowed: {', '.join(choices)}" if unknown else None

    return check


# RFC 9110 §5.6.2 token (without `*`), and an optional `*` that makes it a prefix.
_HEADER_NAME = re.compile(r"[!#$%&'+.^_`|~0-9A-Za-z-]+\*?")


def _header_names(values: tuple[str, ...]) -> str | None:
    bad = [v for v in values if not _HEADER_NAME.fullmatch(v)]
    return f"not header names (a trailing * makes a prefix): {bad!r}" if bad else None


def _store_url(value: str) -> str | None:
    schemes = ("memory", "redis", "rediss", "redis+sentinel", "redis+cluster")
    scheme = urlsplit(value).scheme
    return None if scheme in schemes else f"scheme must be one of {', '.join(schemes)}"


T = TypeVar("T")


@overload
def key(default: T, check: Check | None = None, secret: bool = False,
        path: bool = False) -> T: ...
@overload
def key(*, check: Check | None = None, secret: bool = False, path: bool = False) -> Any: ...


def key(default: Any = REQUIRED, check: Check | None = None, secret: bool = False,
        path: bool = False) -> Any:
    """A config key: its default (none means required) and its check. A `path` key names a
    file; a relative one is relative to the configuration file (`load_settings`). Typed by its
    default, which must fit the field's annotation (a required key: by the annotation, as
    `dataclasses.field` is)."""
    return field(default=default, metadata={"check": check, "secret": secret, "path": path})


# ---------------------------------------------------------------------------------------
# The sections.

CertFormat = Literal["nginx", "envoy-xfcc", "traefik", "aws-alb", "rfc9440", "pem", "der-base64"]
CERT_FORMATS: tuple[CertFormat, ...] = typing.get_args(CertFormat)
# The settings that choose a mode: each a Literal, its check made from it (`_one_of_literal`).
PathMatch = Literal["lenient", "exact"]
EventLoop = Literal["auto", "asyncio"]
FailureMode = Literal["closed", "open"]
WhenFull = Literal["evict", "refuse"]
UpstreamTokenType = Literal["pass", "rewrite", "require"]
UnknownClients = Literal["reject", "forward"]
AssertionAudiences = Literal["issuer", "issuer_or_endpoint"]
PasswordGrant = Literal["forward", "reject"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "human"]
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:openid:params:grant-type:ciba",
    "urn:ietf:params:oauth:grant-type:pre-authorized_code",
)
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "PS384", "PS512",
                   "RS256", "RS384", "RS512")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    listen: str = key("0.0.0.0:8080", _listen)
    admin_listen: str = key("0.0.0.0:9090", _listen)
    # The decision API (README "Calling instead of proxying"): off when empty; never the
    # token or the admin port.
    api_listen: str = key("", _optional_listen)
    token_path: str = key("/token", _path)
    # "lenient": a spelling of a guarded path that a lenient upstream routes the same
    # (/TOKEN, /token/) is validated as that path; "exact": such a spelling is refused.
    token_path_match: PathMatch = key("lenient", _one_of_literal(PathMatch))
    # Query parameters the token and PAR endpoints' URL may carry (RFC 6749 §3.2); any other
    # query component there is refused.
    token_query_allowed: tuple[str, ...] = key((), _query_names)
    public_token_endpoint: str = key(check=_http_url)
    issuer: str = key("", _http_url)  # defaults to the origin of public_token_endpoint
    max_body_bytes: int = key(65536, _positive)
    shutdown_grace_seconds: float = key(20.0, _non_negative)
    # Processes serving the same ports (SO_REUSEPORT); more than one needs a shared store.
    workers: int = key(1, _positive)
    # "auto": uvloop when it is installed (a dependency: faster sockets and callbacks), else
    # asyncio's own loop; "asyncio": always asyncio's own loop.
    event_loop: EventLoop = key("auto", _one_of_literal(EventLoop))
    # Slow and idle clients (sidecar/http/connections.py). The whole request head within
    # this (a front proxy sends it at once; a slowloris trickles it), from the connection's
    # opening or, on keep-alive, from the request's first byte.
    header_timeout_seconds: float = key(10.0, _positive)
    body_timeout_seconds: float = key(10.0, _positive)  # the longest gap between body bytes
    # Above nginx's and Envoy's 60 s upstream idle timeouts (deploy/): the proxy closes an
    # idle connection first, never reuses one the sidecar is closing (a POST lost that way
    # is not retried). At most an hour: aiohttp's own idle timer is the backstop behind it.
    keepalive_timeout_seconds: float = key(75.0, _at_most(3600.0))
    # Per worker. When full, the connection waiting longest for its client is closed to make
    # room; none waiting, the new one is refused with 503. Keep it below the descriptor limit.
    max_connections: int = key(1024, _positive)
    # Admission (sidecar/http/admission.py): token-path requests handled at once per process;
    # beyond that up to max_queued wait, each at most queue_timeout_seconds, in arrival order;
    # past that a request is shed with 503 temporarily_unavailable and Retry-After.
    max_in_flight: int = key(256, _positive)
    max_queued: int = key(1024, _non_negative)
    queue_timeout_seconds: float = key(2.0, _positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamSettings:
    url: str = key(check=_upstream_url)
    timeout_seconds: float = key(10.0, _positive)
    connect_timeout_seconds: float = key(2.0, _positive)
    pool_size: int = key(100, _positive)
    # Below the upstream's own idle timeout, so a pooled connection is never reused just as
    # the upstream closes it (a POST on such a connection fails and is never retried).
    keepalive_seconds: float = key(4.0, _positive)
    preserve_host: bool = key(False)  # send the client's Host instead of the upstream's
    max_token_response_bytes: int = key(1048576, _positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustSettings:
    trusted_proxies: tuple[str, ...] = key(("127.0.0.1/32", "::1/128"), _cidrs)
    client_cert_header: str = key("X-SSL-Client-Cert")
    client_cert_format: CertFormat = key("nginx", _one_of_literal(CertFormat))
    # The chain, where the proxy sends it in a header of its own (RFC 9440 Client-Cert-Chain).
    client_cert_chain_header: str = key("")
    # More headers to drop from untrusted peers, besides the known certificate headers
    # (compared folded, `_` as `-`; a trailing `*` makes a prefix).
    drop_headers: tuple[str, ...] = key((), _header_names)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    url: str = key("memory://", _store_url)
    failure_mode: FailureMode = key("closed", _one_of_literal(FailureMode))
    key_prefix: str = key("token-sidecar:")
    # At least the DPoP rate times the replay window (71 s by default); ~350 bytes an entry.
    memory_max_entries: int = key(250_000, _positive)
    # A full memory store: evict the entry closest to expiry (its replay protection ends
    # early), or refuse the request with 503 (no replay is ever accepted).
    memory_when_full: WhenFull = key("evict", _one_of_literal(WhenFull))
    # Bounded waits: a Redis that hangs must not hang token requests.
    connect_timeout_seconds: float = key(0.05, _positive)
    command_timeout_seconds: float = key(0.05, _positive)
    max_connections: int = key(100, _positive)
    # Connections opened at start and kept open (per master on a Cluster); the pipelines of
    # coalesced commands run over them, at most this many at once (sidecar/adapters/redis/).
    warm_connections: int = key(8, _positive)
    keepalive_seconds: float = key(10.0, _positive)  # how often idle warm connections are pinged
    username: str = key("")                # Redis ACL user
    # Files: the password (a mounted Secret), Sentinel's own password when it has one, and
    # for rediss:// the CA bundle (empty uses the system's) and a client certificate and key.
    password_file: str = key("", path=True)
    sentinel_password_file: str = key("", path=True)
    tls_ca_file: str = key("", path=True)
    tls_cert_file: str = key("", path=True)
    tls_key_file: str = key("", path=True)
    retry_after_seconds: int = key(1, _positive)  # Retry-After on 503 when the store is down


@dataclass(frozen=True, slots=True, kw_only=True)
class DpopSettings:
    required: bool = key(False)
    nonce_required: bool = key(False)
    nonce_secret_file: str = key("", path=True)
    nonce_step_seconds: int = key(60, _positive)
    nonce_window_steps: int = key(2, _non_negative)
    # Ed25519 is RFC 9864's fully-specified name for EdDSA over Ed25519: oauth4webapi and
    # other WebCrypto clients sign with it.
    algorithms: tuple[str, ...] = key(("ES256", "EdDSA", "Ed25519", "PS256", "RS256"),
                                      _subset_of(*DPOP_ALGORITHMS))
    htu_aliases: tuple[str, ...] = key(())
    max_jti_length: int = key(256, _positive)
    iat_max_age_seconds: int = key(60, _non_negative)
    iat_max_future_seconds: int = key(10, _non_negative)
    reject_ath: bool = key(False)
    refresh_binding_ttl_seconds: int = key(30 * 86400, _positive)
    upstream_token_type: UpstreamTokenType = key("rewrite", _one_of_literal(UpstreamTokenType))
    par_path: str = key("", _path)


ASSERTION_ALGORITHMS = (*DPOP_ALGORITHMS, "HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientsSettings:
    registry_file: str = key("", path=True)
    unknown: UnknownClients = key("reject", _one_of_literal(UnknownClients))
    assertion_audiences: AssertionAudiences = key("issuer",
                                                  _one_of_literal(AssertionAudiences))
    # Client assertions (RFC 7523 §3): algorithms when a client registered none (HS* only
    # ever for client_secret_jwt), the longest lifetime accepted, clock leeway.
    assertion_algorithms: tuple[str, ...] = key(ASSERTION_ALGORITHMS,
                                                _subset_of(*ASSERTION_ALGORITHMS))
    assertion_max_lifetime_seconds: int = key(3600, _positive)
    assertion_leeway_seconds: int = key(60, _non_negative)
    secret_cache_size: int = key(10_000, _positive)
    max_concurrent_hash_checks: int = key(4, _positive)
    jwks_cache_ttl_seconds: int = key(300, _positive)
    jwks_min_refetch_seconds: int = key(60, _non_negative)
    jwks_stale_if_error_seconds: int = key(3600, _non_negative)
    jwks_fetch_timeout_seconds: float = key(5.0, _positive)
    jwks_max_bytes: int = key(262144, _positive)
    # How often the registry file is checked for changes (a ConfigMap/Secret symlink swap).
    watch_interval_seconds: float = key(2.0, _positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtBearerSettings:
    """RFC 7523 §3 assertion grants: verified here when trusted issuers are listed."""

    leeway_seconds: int = key(60, _non_negative)
    max_lifetime_seconds: int = key(3600, _positive)
    # [[grants.jwt_bearer.issuers]]: issuer, one of jwks / jwks_file / jwks_uri, optional
    # algorithms and require_jti; checked when the policy is built.
    issuers: tuple[dict[str, Any], ...] = key(())


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantsSettings:
    allowed: tuple[str, ...] = key(GRANT_TYPES, _subset_of(*GRANT_TYPES))
    password: PasswordGrant = key("forward", _one_of_literal(PasswordGrant))
    # Token-type URIs accepted in token exchange besides those of RFC 8693 §3.
    extra_token_types: tuple[str, ...] = key(())
    jwt_bearer: JwtBearerSettings = field(default_factory=JwtBearerSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    level: LogLevel = key("info", _one_of_literal(LogLevel))
    format: LogFormat = key("json", _one_of_literal(LogFormat))


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationSettings:
    """draft-ietf-oauth-attestation-based-client-auth: wallets and apps prove they are a
    genuine instance of a client (README "Attestation-based client authentication")."""

    enabled: bool = key(False)
    challenge_required: bool = key(False)  # every attestation must carry a challenge
    challenge_secret_file: str = key("", path=True)  # one secret a line; empty: no challenges
    challenge_path: str = key("/attestation-challenge", _path)
    challenge_step_seconds: int = key(60, _positive)
    challenge_window_steps: int = key(2, _non_negative)
    pop_iat_max_age_seconds: int = key(60, _non_negative)
    pop_iat_max_future_seconds: int = key(10, _non_negative)
    leeway_seconds: int = key(60, _non_negative)  # clock skew for the attestation's times
    max_age_seconds: int = key(0, _non_negative)  # older attestation iat: use_fresh_attestation
    max_jti_length: int = key(256, _positive)
    algorithms: tuple[str, ...] = key(("ES256", "EdDSA", "Ed25519", "PS256", "RS256"),
                                      _subset_of(*DPOP_ALGORITHMS))
    dpop_combined: bool = key(True)  # accept attest_jwt_client_auth_dpop
    accept_legacy_client_assertion: bool = key(False)  # drafts -00...-02, '~'-joined
    # [[attestation.attesters]]: issuer, one of jwks / jwks_file / jwks_uri, clients,
    # optional algorithms; checked when the policy is built.
    attesters: tuple[dict[str, Any], ...] = key(())


@dataclass(frozen=True, slots=True, kw_only=True)
class BindingsSettings:
    """Access tokens bound to the DPoP key or certificate proven at the token endpoint
    (README "Bound tokens"): kept for the answer's expires_in, else this long."""

    default_ttl_seconds: int = key(3600, _positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class IntrospectionSettings:
    """RFC 7662 introspection and RFC 7009 revocation through the sidecar: `cnf` added to
    the answers for bound tokens, bindings deleted on revocation. Off when the path is empty."""

    path: str = key("", _path)
    revocation_path: str = key("", _path)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetadataSettings:
    """RFC 8414 / OpenID Discovery documents passed through with what the sidecar enforces."""

    augment: bool = key(True)


def _origin(value: str) -> str | None:
    """`scheme://host[:port]`, nothing after it: the htu of a resource-side proof is this
    origin and the request's path (README "The resource side")."""
    problem = _http_url(value)
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
        problem = _path(value)
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
    upstream_url: str = key("", _upstream_url)
    check_listen: str = key("", _optional_listen)  # Envoy ext_authz, auth_request, forwardAuth
    nonce_required: bool = key(False)
    # Empty: dpop.nonce_secret_file (the resource nonces are told apart from the token
    # endpoint's all the same, sidecar.core.nonces `purpose`).
    nonce_secret_file: str = key("", path=True)
    # An unbound token sent as Bearer: let it through ("allow", a mixed fleet keeps
    # working) or refuse it ("deny"). A bound token sent as Bearer is always refused.
    bearer: str = key("allow", _one_of("allow", "deny"))
    required_scopes: tuple[str, ...] = key((), _scopes)
    # Token sources besides the recorded bindings: JWT access tokens (RFC 9068) verified
    # against these keys, and the upstream's introspection (RFC 7662) with the resource
    # server's credentials (a file), answers cached at most this long.
    jwks_uri: str = key("", _http_url)
    introspection_url: str = key("", _http_url)
    introspection_credentials_file: str = key("", path=True)
    introspection_cache_seconds: int = key(300, _non_negative)
    # JWT access tokens typed "JWT" or not typed at all, besides RFC 9068's "at+jwt" (many
    # servers type them so); never another explicit type. Set jwt_audiences with it.
    jwt_allow_plain_typ: bool = key(False)
    # RFC 9068 §4: the `aud` a JWT access token must name one of; empty: not checked.
    jwt_audiences: tuple[str, ...] = key(())


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiSettings:
    """The decision API on `server.api_listen`: who may call it and how much they may send."""

    # One key a line (blank lines and # comments ignored), each at least 32 characters; a
    # caller presents one as `Authorization: Bearer <key>`. Rotate by adding the new key,
    # then removing the old one, as for nonce secrets.
    key_file: str = key("", path=True)
    max_body_bytes: int = key(262144, _positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsSettings:
    # Client ids as a label: only for a registry small enough to keep series bounded.
    client_id_label: bool = key(False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    server: ServerSettings
    upstream: UpstreamSettings
    trust: TrustSettings = field(default_factory=lambda: _defaults(TrustSettings))
    store: StoreSettings = field(default_factory=lambda: _defaults(StoreSettings))
    dpop: DpopSettings = field(default_factory=lambda: _defaults(DpopSettings))
    clients: ClientsSettings = field(default_factory=lambda: _defaults(ClientsSettings))
    grants: GrantsSettings = field(default_factory=lambda: _defaults(GrantsSettings))
    logging: LoggingSettings = field(default_factory=lambda: _defaults(LoggingSettings))
    metrics: MetricsSettings = field(default_factory=lambda: _defaults(MetricsSettings))
    bindings: BindingsSettings = field(default_factory=lambda: _defaults(BindingsSettings))
    introspection: IntrospectionSettings = field(
        default_factory=lambda: _defaults(IntrospectionSettings))
    metadata: MetadataSettings = field(default_factory=lambda: _defaults(MetadataSettings))
    attestation: AttestationSettings = field(
        default_factory=lambda: _defaults(AttestationSettings))
    resource: ResourceSettings = field(default_factory=lambda: _defaults(ResourceSettings))
    api: ApiSettings = field(default_factory=lambda: _defaults(ApiSettings))
    # Not a key: the directory of the file the settings came from; relative paths in it
    # are resolved against this directory.
    base_dir: str = "."

    @property
    def issuer(self) -> str:
        if self.server.issuer:
            return self.server.issuer
        parts = urlsplit(self.server.public_token_endpoint)
        return f"{parts.scheme}://{parts.netloc}"


SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)
    if f.name != "base_dir"
}


def _defaults(cls: type[Any]) -> Any:
    return cls()


# ---------------------------------------------------------------------------------------
# Loading.


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate; or raise ConfigError."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    settings = settings_from_mapping(raw, os.environ if environ is None else environ, problems)
    if path is None:
        return settings
    # The directory the file is named in, symlinks not followed: a Kubernetes ConfigMap
    # volume links sidecar.toml to ..data/sidecar.toml, and ..data to a timestamped directory
    # that the next update deletes; paths must stay relative to the name the user gave.
    return resolve_paths(settings, Path(os.path.abspath(path)).parent)


def resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    """Every file key made absolute: a relative path is relative to `base_dir`, the directory
    of the configuration file, wherever its value came from (the file or the environment),
    so that the process's working directory never changes which file is read."""
    sections = {}
    for name in SECTIONS:
        section = getattr(settings, name)
        paths = {f.name: str(base_dir / value) for f in dataclasses.fields(section)
                 if f.metadata.get("path") and (value := getattr(section, f.name))}
        sections[name] = dataclasses.replace(section, **paths)
    return dataclasses.replace(settings, **sections, base_dir=str(base_dir))


def settings_from_mapping(
    raw: Mapping[str, Any], environ: Mapping[str, str], problems: list[str] | None = None
) -> Settings:
    problems = [] if problems is None else problems
    for name in raw:
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (known: {', '.join(SECTIONS)})")
    problems.extend(_unknown_variables(environ))
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, Mapping):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = _build_section(name, cls, table, environ, problems)
    if problems:
        raise ConfigError(problems)
    settings = Settings(**sections)
    problems.extend(_cross_checks(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def env_variables() -> dict[str, str]:
    """Every TOKEN_SIDECAR_* variable a key can be set by, and that key (`section.key`)."""
    names: dict[str, str] = {}

    def add(section: str, cls: type[Any]) -> None:
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            dotted = f"{section}.{fld.name}"
            if dataclasses.is_dataclass(hints[fld.name]):
                add(dotted, hints[fld.name])
            else:
                names[env_name(dotted)] = dotted

    for section, cls in SECTIONS.items():
        add(section, cls)
    return names


def env_name(dotted: str) -> str:
    return f"{ENV_PREFIX}{dotted}".upper().replace(".", "_")


# What Kubernetes injects for a Service named `token-sidecar` or `token-sidecar-<x>` in the
# namespace (enableServiceLinks, on by default): TOKEN_SIDECAR_SERVICE_HOST,
# TOKEN_SIDECAR_REDIS_PORT_6379_TCP_ADDR, ... These are not misspelt keys.
_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$")


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A misspelt variable is refused like an unknown TOML key: silently ignoring it would
    leave the setting it was meant to change at its default."""
    known = env_variables()
    problems = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known \
                and not _SERVICE_LINK.search(name):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]} ({known[close[0]]})?" if close
                    else f"variables are {ENV_PREFIX}<SECTION>_<KEY>")
            problems.append(f"{name}: unknown environment variable; {hint}")
    return problems


def _cross_checks(settings: Settings) -> list[str]:
    """Problems that only a combination of keys shows."""
    problems = []
    if settings.server.workers > 1 and settings.store.url.startswith("memory:"):
        # Each worker would keep its own replay cache: a proof could pass once per worker.
        problems.append("server.workers: more than one worker needs a shared store "
                        "(store.url redis://...), not memory://")
    if settings.store.warm_connections > settings.store.max_connections:
        problems.append("store.warm_connections: must not exceed store.max_connections "
                        f"({settings.store.max_connections})")
    server = settings.server
    if _same_socket(server.listen, server.admin_listen):
        problems.append("server.admin_listen: must differ from server.listen")
    if server.api_listen and (_same_socket(server.api_listen, server.listen)
                              or _same_socket(server.api_listen, server.admin_listen)):
        problems.append("server.api_listen: must differ from server.listen and "
                        "server.admin_listen")
    if settings.server.api_listen and not settings.api.key_file:
        # The API decides who gets tokens: it never listens without a key.
        problems.append("api.key_file: required when server.api_listen is set")
    if settings.dpop.nonce_required and not settings.dpop.nonce_secret_file:
        problems.append("dpop.nonce_required: needs dpop.nonce_secret_file")
    problems.extend(_path_clashes(settings))
    problems.extend(_resource_checks(settings))
    return problems


def _resource_checks(settings: Settings) -> list[str]:
    """[resource]: what an enabled resource side needs, and what it must not take over."""
    resource = settings.resource
    if not resource.enabled:
        return []
    problems = []
    if not resource.public_origin:
        problems.append("resource.public_origin: required when resource.enabled")
    if not resource.prefixes and not resource.check_listen:
        problems.append("resource.enabled: needs resource.prefixes (inline) or "
                        "resource.check_listen (check-only), or both")
    if resource.prefixes and not resource.upstream_url:
        problems.append("resource.upstream_url: required with resource.prefixes")
    server = settings.server
    if resource.check_listen and any(
            _same_socket(resource.check_listen, other)
            for other in (server.listen, server.admin_listen, server.api_listen) if other):
        problems.append("resource.check_listen: must differ from server.listen, "
                        "server.admin_listen and server.api_listen")
    if resource.nonce_required and not (resource.nonce_secret_file
                                        or settings.dpop.nonce_secret_file):
        problems.append("resource.nonce_required: needs resource.nonce_secret_file or "
                        "dpop.nonce_secret_file")
    if resource.introspection_url and not resource.introspection_credentials_file:
        problems.append("resource.introspection_credentials_file: required with "
                        "resource.introspection_url")
    guarded = [p for p in (settings.server.token_path, settings.dpop.par_path,
                           settings.introspection.path, settings.introspection.revocation_path)
               if p]
    for prefix in resource.prefixes:
        taken = [p for p in guarded if (p.rstrip("/") + "/").lower().startswith(
            prefix.rstrip("/").lower() + "/")]
        if taken:
            problems.append(f"resource.prefixes: {prefix!r} would take over {taken[0]!r}")
    return problems


_WILDCARD_HOSTS = ("0.0.0.0", "::", "[::]")  # noqa: S104 - names, not a bind


def _same_socket(one: str, other: str) -> bool:
    """Two listen addresses that cannot both be bound: equal, or one port where either host
    is a wildcard (0.0.0.0:8080 takes 127.0.0.1:8080 too)."""
    if one == other:
        return True
    host, _, port = one.rpartition(":")
    other_host, _, other_port = other.rpartition(":")
    return port == other_port and (host in _WILDCARD_HOSTS or other_host in _WILDCARD_HOSTS)


def _path_clashes(settings: Settings) -> list[str]:
    """Each endpoint the sidecar handles needs a path of its own."""
    claimed = {"server.token_path": settings.server.token_path}
    for name, path in (("dpop.par_path", settings.dpop.par_path),
                       ("introspection.path", settings.introspection.path),
                       ("introspection.revocation_path", settings.introspection.revocation_path)):
        if not path:
            continue
        clash = next((other for other, taken in claimed.items() if taken == path), None)
        if clash is not None:
            return [f"{name}: {path!r} is already {clash}"]
        claimed[name] = path
    return []


def _build_section(
    section: str, cls: type[Any], table: Mapping[str, Any], environ: Mapping[str, str],
    problems: list[str],
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name in table:
        if name not in known:
            problems.append(f"{section}.{name}: unknown key (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for name, fld in known.items():
        dotted = f"{section}.{name}"
        variable = env_name(dotted)
        if dataclasses.is_dataclass(hints[name]):  # a nested table, e.g. [grants.jwt_bearer]
            nested = table.get(name, {})
            if not isinstance(nested, Mapping):
                problems.append(f"{dotted}: expected a table")
                nested = {}
            values[name] = _build_section(dotted, hints[name], nested, environ, problems)
            continue
        if variable in environ:
            value, problem = _from_env(environ[variable], hints[name])
            if problem:
                problems.append(f"{dotted} (from {variable}): {problem}")
                continue
        elif name in table:
            value, problem = _coerce(table[name], hints[name])
            if problem:
                problems.append(f"{dotted}: {problem}")
                continue
        elif fld.default is dataclasses.MISSING:
            problems.append(f"{dotted}: required (set it in the file or in {variable})")
            continue
        else:
            value = fld.default
        check: Check | None = fld.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            problems.append(f"{dotted}: {problem}")
            continue
        values[name] = value
    if len(values) != len(known):
        return None
    return cls(**values)


def _coerce(value: Any, hint: Any) -> tuple[Any, str | None]:
    """Check a TOML value against a field's type; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint)[0] is not str:  # an array of tables
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return None, f"expected an array of tables, got {_type_name(value)}"
        return tuple(value), None
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"expected a list of strings, got {_type_name(value)}"
        return tuple(value), None
    if origin is Literal:  # a mode: a string, checked against the choices by its key's check
        if isinstance(value, str):
            return value, None
        return None, f"expected str, got {_type_name(value)}"  # as for a str key
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if hint is int and isinstance(value, bool):
        return None, "expected an integer, got a boolean"
    if isinstance(hint, type) and isinstance(value, hint):
        return value, None
    if isinstance(hint, types.UnionType):
        return value, None
    return None, f"expected {hint.__name__}, got {_type_name(value)}"


def _from_env(text: str, hint: Any) -> tuple[Any, str | None]:
    if typing.get_origin(hint) is tuple:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return _coerce(json.loads(stripped), hint)
            except json.JSONDecodeError:
                return None, "expected a JSON array of strings"
        return tuple(v.strip() for v in stripped.split(",") if v.strip()), None
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True, None
        if lowered in ("false", "0", "no", "off"):
            return False, None
        return None, f"expected true or false, got {text!r}"
    if hint in (int, float):
        try:
            return hint(text.strip()), None
        except ValueError:
            return None, f"expected {hint.__name__}, got {text!r}"
    return text, None


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def read_secret_lines(path: str, min_length: int = 32) -> tuple[str, ...]:
    """Read a secrets file: one secret a line, blank lines and `#` comments ignored.

    The first line signs and every line verifies, so a secret can be rotated by adding the
    new one on top and removing the old one later.
    """
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    secrets = tuple(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
    if not secrets:
        raise ConfigError([f"{path}: no secret in the file"])
    for number, secret in enumerate(secrets, 1):
        if len(secret) < min_length or not secret.isprintable():
            raise ConfigError(
                [f"{path}: secret {number} must be printable text of at least {min_length} "
                 "characters"]
            )
    return secrets
