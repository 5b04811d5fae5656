"""What each client registered (`Client`), and the registry of them (`Registry`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography import x509
from cryptography.x509 import verification

from sidecar.core.clients.subjects import SubjectMatch
from sidecar.core.jose.key_sets import JwkEntry

# RFC 7591 §2: "If omitted, the default is that the client will use only the
# authorization_code Grant Type."
DEFAULT_GRANT_TYPES: Final = ("authorization_code",)


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    token_endpoint_auth_method: str
    grant_types: tuple[str, ...] = DEFAULT_GRANT_TYPES
    dpop_bound_access_tokens: bool = False
    dpop_nonce_required: bool | None = None  # None: follow dpop.nonce_required
    tls_client_certificate_bound_access_tokens: bool = False
    access_token_duration: int | None = None  # seconds
    refresh_token_duration: int | None = None
    properties: str | None = None  # compact JSON, ASCII: ready for X-Token-Properties
    jwt_at_claims: str | None = None  # compact JSON, ASCII: ready for X-Token-JWT-AT-Claims
    token_endpoint_auth_signing_alg: str | None = None
    client_secret_file: str | None = None
    client_secret: str | None = field(default=None, repr=False)  # the file's content
    client_secret_hash: str | None = field(default=None, repr=False)
    jwks: tuple[JwkEntry, ...] = ()  # inline `jwks` or `jwks_file`
    jwks_uri: str | None = None
    tls_client_auth_subject: SubjectMatch | None = None
    tls_client_auth_ca_file: str | None = None
    tls_client_auth_ca: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    tls_trust_store: verification.Store | None = field(default=None, repr=False,
                                                       compare=False)
    attestation_additional_signal: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"  # noqa: S105 - a method name

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


class Registry:
    """The registered clients by id. Immutable once built; a reload builds a new one."""

    __slots__ = ("_clients", "source")

    def __init__(self, clients: Mapping[str, Client] | None = None, source: str = "") -> None:
        self._clients = dict(clients or {})
        self.source = source

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._clients

    def __iter__(self) -> Iterator[Client]:
        return iter(self._clients.values())

    def __len__(self) -> int:
        return len(self._clients)

    def __repr__(self) -> str:
        return f"Registry(source={self.source!r}, clients={len(self)})"

    @property
    def jwks_uris(self) -> frozenset[str]:
        return frozenset(c.jwks_uri for c in self if c.jwks_uri)
