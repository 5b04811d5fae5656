"""Who the clients are and what they may do: `[clients]` (the registry, assertions,
secrets, jwks_uri fetching), `[grants]` with `[grants.jwt_bearer]`, and `[attestation]`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sidecar.settings import checks
from sidecar.settings.keys import (
    DPOP_ALGORITHMS,
    GRANT_TYPES,
    AssertionAudiences,
    PasswordGrant,
    UnknownClients,
    key,
)

ASSERTION_ALGORITHMS = (*DPOP_ALGORITHMS, "HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientsSettings:
    registry_file: str = key("", path=True)
    unknown: UnknownClients = key("reject", checks.one_of_literal(UnknownClients))
    assertion_audiences: AssertionAudiences = key("issuer",
                                                  checks.one_of_literal(AssertionAudiences))
    # Client assertions (RFC 7523 §3): algorithms when a client registered none (HS* only
    # ever for client_secret_jwt), the longest lifetime accepted, clock leeway.
    assertion_algorithms: tuple[str, ...] = key(ASSERTION_ALGORITHMS,
                                                checks.subset_of(*ASSERTION_ALGORITHMS))
    assertion_max_lifetime_seconds: int = key(3600, checks.positive)
    assertion_leeway_seconds: int = key(60, checks.non_negative)
    secret_cache_size: int = key(10_000, checks.positive)
    max_concurrent_hash_checks: int = key(4, checks.positive)
    jwks_cache_ttl_seconds: int = key(300, checks.positive)
    jwks_min_refetch_seconds: int = key(60, checks.non_negative)
    jwks_stale_if_error_seconds: int = key(3600, checks.non_negative)
    jwks_fetch_timeout_seconds: float = key(5.0, checks.positive)
    jwks_max_bytes: int = key(262144, checks.positive)
    # How often the registry file is checked for changes (a ConfigMap/Secret symlink swap).
    watch_interval_seconds: float = key(2.0, checks.positive)


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtBearerSettings:
    """RFC 7523 §3 assertion grants: verified here when trusted issuers are listed."""

    leeway_seconds: int = key(60, checks.non_negative)
    max_lifetime_seconds: int = key(3600, checks.positive)
    # [[grants.jwt_bearer.issuers]]: issuer, one of jwks / jwks_file / jwks_uri, optional
    # algorithms and require_jti; checked when the policy is built.
    issuers: tuple[dict[str, Any], ...] = key(())


@dataclass(frozen=True, slots=True, kw_only=True)
class GrantsSettings:
    allowed: tuple[str, ...] = key(GRANT_TYPES, checks.subset_of(*GRANT_TYPES))
    password: PasswordGrant = key("forward", checks.one_of_literal(PasswordGrant))
    # Token-type URIs accepted in token exchange besides those of RFC 8693 §3.
    extra_token_types: tuple[str, ...] = key(())
    jwt_bearer: JwtBearerSettings = field(default_factory=JwtBearerSettings)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttestationSettings:
    """draft-ietf-oauth-attestation-based-client-auth: wallets and apps prove they are a
    genuine instance of a client (README "Attestation-based client authentication")."""

    enabled: bool = key(False)
    challenge_required: bool = key(False)  # every attestation must carry a challenge
    challenge_secret_file: str = key("", path=True)  # one secret a line; empty: no challenges
    challenge_path: str = key("/attestation-challenge", checks.path)
    challenge_step_seconds: int = key(60, checks.positive)
    challenge_window_steps: int = key(2, checks.non_negative)
    pop_iat_max_age_seconds: int = key(60, checks.non_negative)
    pop_iat_max_future_seconds: int = key(10, checks.non_negative)
    leeway_seconds: int = key(60, checks.non_negative)  # clock skew for the attestation's times
    # An attestation whose iat is older than this: use_fresh_attestation (0: no limit).
    max_age_seconds: int = key(0, checks.non_negative)
    max_jti_length: int = key(256, checks.positive)
    algorithms: tuple[str, ...] = key(("ES256", "EdDSA", "Ed25519", "PS256", "RS256"),
                                      checks.subset_of(*DPOP_ALGORITHMS))
    dpop_combined: bool = key(True)  # accept attest_jwt_client_auth_dpop
    accept_legacy_client_assertion: bool = key(False)  # drafts -00...-02, '~'-joined
    # [[attestation.attesters]]: issuer, one of jwks / jwks_file / jwks_uri, clients,
    # optional algorithms; checked when the policy is built.
    attesters: tuple[dict[str, Any], ...] = key(())
