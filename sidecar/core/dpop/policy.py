"""What `validate_proof` checks a proof against (RFC 9449 §4.3), computed once at start-up,
with the caches that make a client's next proof cheap."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sidecar.core.htu import normalize_htu
from sidecar.core.jose.algorithms import ALGORITHMS, VerifiedHeaders
from sidecar.core.jose.keys import KeyCache
from sidecar.settings import ConfigError, DpopSettings

MAX_PROOF_LENGTH: Final = 16384  # an 8192-bit RSA proof is under 5 KiB
NONCE_HEADER: Final = "DPoP-Nonce"
TYP: Final = "dpop+jwt"
HEADER_CACHE_SIZE: Final = 4096
KEY_CACHE_SIZE: Final = 4096


def _header_cache() -> VerifiedHeaders:
    return VerifiedHeaders(HEADER_CACHE_SIZE)


def _key_cache() -> KeyCache:
    return KeyCache(KEY_CACHE_SIZE)


@dataclass(frozen=True, slots=True)
class DpopPolicy:
    """What `validate_proof` checks against, computed once at startup.

    `headers` (the JOSE headers whose signature verified) and `keys` (the parsed `jwk`s) are
    the policy's own caches, one pair per policy built: they change how fast a proof is
    judged, never how, so they take no part in comparing policies."""

    algorithms: frozenset[str]
    htu_targets: frozenset[str]  # normalised with normalize_htu
    iat_max_age_seconds: int
    iat_max_future_seconds: int
    max_jti_length: int
    reject_ath: bool
    headers: VerifiedHeaders = field(default_factory=_header_cache, compare=False, repr=False)
    keys: KeyCache = field(default_factory=_key_cache, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: DpopSettings, public_token_endpoint: str) -> DpopPolicy:
        """Raises ConfigError when the endpoint or an alias is not an http(s) URL."""
        problems: list[str] = []
        targets: set[str] = set()
        for key, url in [("server.public_token_endpoint", public_token_endpoint),
                         *(("dpop.htu_aliases", alias) for alias in settings.htu_aliases)]:
            normalised = normalize_htu(url)
            if normalised is None:
                problems.append(f"{key}: not usable as a DPoP htu: {url!r}")
            else:
                targets.add(normalised)
        if problems:
            raise ConfigError(problems)
        # Only asymmetric algorithms this module can verify ever get in (§4.3 step 5, §11.6),
        # whatever the settings validation lets through.
        algorithms = frozenset(a for a in settings.algorithms if a in ALGORITHMS)
        return cls(
            algorithms=algorithms,
            htu_targets=frozenset(targets),
            iat_max_age_seconds=settings.iat_max_age_seconds,
            iat_max_future_seconds=settings.iat_max_future_seconds,
            max_jti_length=settings.max_jti_length,
            reject_ath=settings.reject_ath,
        )

    @property
    def replay_ttl_seconds(self) -> float:
        """How long a `jti` must be remembered: the whole acceptance window of a proof
        (§11.1), plus one second for the rounding of `iat` to whole seconds. Not longer: the
        RFC §5 examples reuse one `jti` 2,680 s apart and both must pass."""
        return float(self.iat_max_age_seconds + self.iat_max_future_seconds + 1)
