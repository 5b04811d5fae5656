"""`[trust]` (the proxies whose certificate headers count) and `[store]` (the replay
store: memory or Redis, its bounds and files)."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.settings import checks
from sidecar.settings.keys import CertFormat, FailureMode, WhenFull, key


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustSettings:
    trusted_proxies: tuple[str, ...] = key(("127.0.0.1/32", "::1/128"), checks.cidrs)
    client_cert_header: str = key("X-SSL-Client-Cert")
    client_cert_format: CertFormat = key("nginx", checks.one_of_literal(CertFormat))
    # The chain, where the proxy sends it in a header of its own (RFC 9440 Client-Cert-Chain).
    client_cert_chain_header: str = key("")
    # More headers to drop from untrusted peers, besides the known certificate headers
    # (compared folded, `_` as `-`; a trailing `*` makes a prefix).
    drop_headers: tuple[str, ...] = key((), checks.header_names)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    url: str = key("memory://", checks.store_url)
    failure_mode: FailureMode = key("closed", checks.one_of_literal(FailureMode))
    key_prefix: str = key("token-sidecar:")
    # At least the DPoP rate times the replay window (71 s by default); ~350 bytes an entry.
    memory_max_entries: int = key(250_000, checks.positive)
    # A full memory store: evict the entry closest to expiry (its replay protection ends
    # early), or refuse the request with 503 (no replay is ever accepted).
    memory_when_full: WhenFull = key("evict", checks.one_of_literal(WhenFull))
    # Bounded waits: a Redis that hangs must not hang token requests.
    connect_timeout_seconds: float = key(0.05, checks.positive)
    command_timeout_seconds: float = key(0.05, checks.positive)
    max_connections: int = key(100, checks.positive)
    # Connections opened at start and kept open (per master on a Cluster); the pipelines of
    # coalesced commands run over them, at most this many at once (sidecar/adapters/redis/).
    warm_connections: int = key(8, checks.positive)
    keepalive_seconds: float = key(10.0, checks.positive)  # how often idle warm ones are pinged
    username: str = key("")                # Redis ACL user
    # Files: the password (a mounted Secret), Sentinel's own password when it has one, and
    # for rediss:// the CA bundle (empty uses the system's) and a client certificate and key.
    password_file: str = key("", path=True)
    sentinel_password_file: str = key("", path=True)
    tls_ca_file: str = key("", path=True)
    tls_cert_file: str = key("", path=True)
    tls_key_file: str = key("", path=True)
    retry_after_seconds: int = key(1, checks.positive)  # Retry-After on 503 when the store is down
