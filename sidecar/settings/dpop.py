"""`[dpop]` (RFC 9449 proofs, nonces, the upstream's token_type) and `[bindings]` (access
tokens bound at the token endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.settings import checks
from sidecar.settings.keys import DPOP_ALGORITHMS, UpstreamTokenType, key


@dataclass(frozen=True, slots=True, kw_only=True)
class DpopSettings:
    required: bool = key(False)
    nonce_required: bool = key(False)
    nonce_secret_file: str = key("", path=True)
    nonce_step_seconds: int = key(60, checks.positive)
    nonce_window_steps: int = key(2, checks.non_negative)
    # Ed25519 is RFC 9864's fully-specified name for EdDSA over Ed25519: oauth4webapi and
    # other WebCrypto clients sign with it.
    algorithms: tuple[str, ...] = key(("ES256", "EdDSA", "Ed25519", "PS256", "RS256"),
                                      checks.subset_of(*DPOP_ALGORITHMS))
    htu_aliases: tuple[str, ...] = key(())
    max_jti_length: int = key(256, checks.positive)
    iat_max_age_seconds: int = key(60, checks.non_negative)
    iat_max_future_seconds: int = key(10, checks.non_negative)
    reject_ath: bool = key(False)
    refresh_binding_ttl_seconds: int = key(30 * 86400, checks.positive)
    upstream_token_type: UpstreamTokenType = key("rewrite",
                                                 checks.one_of_literal(UpstreamTokenType))
    par_path: str = key("", checks.path)

@dataclass(frozen=True, slots=True, kw_only=True)
class BindingsSettings:
    """Access tokens bound to the DPoP key or certificate proven at the token endpoint
    (README "Bound tokens"): kept for the answer's expires_in, else this long."""

    default_ttl_seconds: int = key(3600, checks.positive)
