"""The ports the core depends on: a clock, the store, the source of `jwks_uri` keys (and the
fetcher under it), the client-secret check, the files a configuration names. Adapters live in
`sidecar.adapters`.

The store holds only four kinds of keys, all with a TTL (README "The store"): DPoP proof `jti`s,
client-assertion and attestation-PoP `jti`s, refresh- and access-token bindings, attestation
challenges.
"""

from __future__ import annotations

import hashlib
import time
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sidecar.core.clients.model import Client
    from sidecar.core.jose.key_sets import JwkEntry
    from sidecar.core.resource.token_facts import TokenFacts


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch. Every time check in the core reads this one clock."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class StoreError(Exception):
    """The store could not answer (down, timed out, refused). Never a verdict on the request."""


class StoreFullError(StoreError):
    """The store is full and was told to refuse rather than forget (`store.memory_when_full =
    "refuse"`). Never skipped, whatever `store.failure_mode` says: skipping would accept the
    very replay that refusing is there to stop."""


class ReplayStore(Protocol):
    async def first_use(self, kind: str, value: str, ttl_seconds: float) -> bool:
        """Record `value` as used; True the first time it is seen within the TTL.

        One atomic `SET key 1 NX PX ttl`: two replicas that see the same value at the same
        instant get True exactly once. Raises StoreError when the store cannot answer.
        """
        ...

    async def get_binding(self, kind: str, value: str) -> str | None:
        """The key a refresh token (or similar) is bound to, or None."""
        ...

    async def set_binding(self, kind: str, value: str, bound_to: str, ttl_seconds: float) -> None:
        ...

    async def delete_binding(self, kind: str, value: str) -> None:
        """Forget a binding (a revoked token's); nothing happens when there is none."""
        ...

    async def ping(self) -> None:
        """Raise StoreError when the store is unreachable (used by /readyz)."""
        ...

    async def close(self) -> None:
        ...


class FetchError(Exception):
    """The `Fetcher` could not get a JSON document (network, status, size, not JSON)."""


class Fetcher(Protocol):
    async def get_json(self, url: str) -> object:
        """GET `url` and return the parsed JSON body; raise FetchError on any failure."""
        ...


class JwksSource(Protocol):
    async def keys_for(self, owner: str, jwks_uri: str, kid: str | None = None, *,
                       x5t_s256: str | None = None) -> tuple[JwkEntry, ...]:
        """The keys published at `jwks_uri` (on behalf of `owner`, a client id or issuer,
        named in errors). When `kid` or a certificate thumbprint is given that the cached set
        lacks, the set is fetched again, within the rate limit. Raises JwksError."""
        ...


class SecretVerifier(Protocol):
    """Checks a presented client secret against the registry (RFC 6749 §2.3.1); the
    implementation, with its cache and worker threads, is `sidecar.adapters.client_secrets`."""

    async def verify(self, client: Client, presented: str) -> bool:
        """True when `presented` is the client's registered secret (or matches its hash)."""
        ...


class ConfigFiles(Protocol):
    """Reads the files the configuration names (registry, secrets, key files, credentials)
    when a policy is built (`check-config`, start, reload). The core never opens a file
    itself (tests/test_layering.py); `sidecar.adapters.config_files` reads the local disk."""

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        """The file's bytes: all of them, or at most `max_bytes + 1` (more than `max_bytes`
        tells the caller the file is too large). Raises OSError like `open()`."""
        ...


class SourceUnavailableError(Exception):
    """A token source (the authorization server's JWKS or introspection endpoint) could not
    answer. The resource side fails closed on it (503), never treats it as "not bound"."""


class InvalidTokenError(Exception):
    """A token source recognised the token and found it invalid: a JWT access token whose
    signature, issuer, type or times fail (RFC 9068 §4). The check refuses it as
    `invalid_token` (RFC 6750 §3.1) and asks no further source: an introspection endpoint
    must not get a second chance to vouch for a forged JWT. `reason` is stable (a result
    code such as `jwt.expired`), `description` may be sent to the client, the message is for
    logs; none of them holds the token."""

    def __init__(self, reason: str, description: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.description = description


class TokenFactsSource(Protocol):
    """One source of facts about an access token: its recorded binding, its JWT claims, or
    the upstream's introspection answer (`sidecar.core.resource.token_facts`)."""

    async def facts(self, access_token: str) -> TokenFacts | None:
        """The token's facts, or None when this source does not know it (not a JWT, not
        recorded, inactive). Raises InvalidTokenError for a token it knows to be invalid,
        SourceUnavailableError (or StoreError) when it cannot answer."""
        ...


def store_key(prefix: str, kind: str, value: str) -> str:
    """`<prefix><kind>:<sha256(value)>`: values are hashed so that keys have a bounded size
    and tokens never sit in the store in clear (RFC 9449 §11.1 suggests storing a hash)."""
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}{kind}:{digest}"
