"""Moved to `sidecar.core.jose` (`key_sets`, `compact`, `algorithms`, `claims`); these names
stay importable for the shell, the adapters and the tests until they import from there."""

from sidecar.core.jose.algorithms import HMAC_ALGORITHMS, hmac_key_long_enough
from sidecar.core.jose.claims import TimeRules, audience_matches, check_times
from sidecar.core.jose.compact import MAX_JWS_LENGTH, CompactJws, parse_compact_jws
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    MAX_KEYS,
    MAX_X5C,
    CachingJwksSource,
    Fetcher,
    FetchError,
    JwkEntry,
    JwksError,
    JwksSource,
    StaticJwksSource,
    parse_jwks,
    select_keys,
    verify_hmac,
    verify_signature,
)

__all__ = ["ASYMMETRIC_ALGORITHMS", "HMAC_ALGORITHMS", "MAX_JWS_LENGTH", "MAX_KEYS", "MAX_X5C",
           "CachingJwksSource", "CompactJws", "FetchError", "Fetcher", "JwkEntry", "JwksError",
           "JwksSource", "StaticJwksSource", "TimeRules", "audience_matches", "check_times",
           "hmac_key_long_enough", "parse_compact_jws", "parse_jwks", "select_keys",
           "verify_hmac", "verify_signature"]
