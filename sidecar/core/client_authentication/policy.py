"""What client authentication checks against (`ClientAuthPolicy`), what it returns
(`AuthenticatedClient`), and how it refuses: `invalid_client` (RFC 6749 §5.2) with a Basic
challenge when the client used the Authorization header."""


from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar import errors
from sidecar.core.clients.model import Client
from sidecar.core.credentials import basic_challenge
from sidecar.core.jose.algorithms import HMAC_ALGORITHMS
from sidecar.core.jose.claims import (
    TimeRules,
)
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
)
from sidecar.core.syntax import clip_detail
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck
from sidecar.settings import AssertionAudiences, Settings, UnknownClients

CLIENT_ASSERTION_JTI: Final = "client_assertion"  # store kind
SECRET_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post"})
JWT_METHODS: Final = frozenset({"client_secret_jwt", "private_key_jwt"})
TLS_METHODS: Final = frozenset({"tls_client_auth", "self_signed_tls_client_auth"})
DEFAULT_ASSERTION_ALGORITHMS: Final = frozenset(ASYMMETRIC_ALGORITHMS) | frozenset(HMAC_ALGORITHMS)
# draft-ietf-oauth-rfc7523bis: clients SHOULD put `client-authentication+jwt` in `typ`, and
# rejecting untyped assertions is "NOT RECOMMENDED". Any
# other explicit type is another kind of JWT (a DPoP proof, an access token): refused.
ASSERTION_TYPES: Final = frozenset({"jwt", "client-authentication+jwt"})


@dataclass(frozen=True, slots=True)
class ClientAuthPolicy:
    """What `authenticate` checks against, built once from the settings."""

    issuer: str
    token_endpoint: str
    assertion_audiences: AssertionAudiences = "issuer"
    unknown: UnknownClients = "reject"  # forward: an unregistered client goes upstream
    # Allowed `alg` values when a client registered no token_endpoint_auth_signing_alg; HS*
    # count only for client_secret_jwt and the others only for private_key_jwt.
    assertion_algorithms: frozenset[str] = DEFAULT_ASSERTION_ALGORITHMS
    max_assertion_lifetime_seconds: float = 3600.0
    leeway_seconds: float = 60.0
    max_jti_length: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientAuthPolicy:
        clients = settings.clients
        return cls(
            issuer=settings.issuer,
            token_endpoint=settings.server.public_token_endpoint,
            assertion_audiences=clients.assertion_audiences,
            unknown=clients.unknown,
            assertion_algorithms=frozenset(clients.assertion_algorithms),
            max_assertion_lifetime_seconds=float(clients.assertion_max_lifetime_seconds),
            leeway_seconds=float(clients.assertion_leeway_seconds),
        )

    @property
    def audiences(self) -> frozenset[str]:
        if self.assertion_audiences == "issuer_or_endpoint":
            return frozenset({self.issuer, self.token_endpoint})
        return frozenset({self.issuer})

    @property
    def time_rules(self) -> TimeRules:
        return TimeRules(self.leeway_seconds, self.max_assertion_lifetime_seconds)


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    """Who the client is. `client` is None for an unregistered client forwarded as such
    (`clients.unknown = "forward"`); `authenticated` is what X-Token-Client-Authenticated
    says; `method` the registered method (or, for an unknown client, the presented one).
    `replay` is the assertion's `jti`, still to be burned by the caller's last step."""

    client: Client | None
    authenticated: bool
    method: str
    replay: ReplayCheck | None = None


class Refusal:
    """Builds the `invalid_client` errors of one request."""

    def __init__(self, policy: ClientAuthPolicy, used_basic: bool) -> None:
        # RFC 6749 §5.2: the client used the Authorization header, so 401 with a
        # WWW-Authenticate of the scheme it used.
        self._challenge = basic_challenge(policy.issuer) if used_basic else None

    def __call__(self, reason: str, description: str, detail: str = "") -> OAuthError:
        error = errors.invalid_client(f"client.{reason}", description, clip_detail(detail))
        return error.with_headers(self._challenge) if self._challenge else error


AUTHENTICATION_FAILED = "Client authentication failed."
