"""The DPoP policy and building blocks of sidecar.core.dpop. Nonces are in test_nonces.py,
htu in test_htu.py, JWKs and thumbprints in tests/core/jose/test_keys.py; the RFC 9449
behaviour of `validate_proof` is in tests/conformance/test_rfc9449.py."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from sidecar.core.dpop.claims import access_token_hash
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.htu import normalize_htu_targets
from sidecar.core.jose.algorithms import ALGORITHMS
from sidecar.errors import OAuthError
from sidecar.settings import ConfigError, DpopSettings
from tests.conformance.test_rfc9449 import RFC_POLICY, RFC_RESOURCE, RFC_RESOURCE_PROOF
from tests.support.dpop import DpopKey


def test_policy_from_settings() -> None:
    settings = DpopSettings(algorithms=("ES256", "RS256"),
                            htu_aliases=("HTTPS://Alias.example.net:443/oauth/token?x",),
                            iat_max_age_seconds=30, iat_max_future_seconds=5,
                            max_jti_length=64, reject_ath=True)
    policy = DpopPolicy.from_settings(settings, "https://as.example.com/token")
    assert policy.algorithms == frozenset({"ES256", "RS256"})
    assert policy.htu_targets == frozenset({"https://as.example.com/token",
                                            "https://alias.example.net/oauth/token"})
    assert (policy.iat_max_age_seconds, policy.iat_max_future_seconds) == (30, 5)
    assert policy.max_jti_length == 64
    assert policy.reject_ath is True
    assert policy.replay_ttl_seconds == 36.0


def test_policy_defaults_ttl_is_the_window() -> None:
    policy = DpopPolicy.from_settings(DpopSettings(), "https://as.example.com/token")
    assert policy.replay_ttl_seconds == 71.0  # 60 s back + 10 s ahead + 1 s rounding
    assert policy.algorithms == frozenset({"ES256", "EdDSA", "Ed25519", "PS256", "RS256"})


def test_policy_never_admits_symmetric_or_none() -> None:
    # Even if settings validation were bypassed, the policy keeps only verifiable algorithms.
    settings = DpopSettings(algorithms=("ES256", "HS256", "none"))
    policy = DpopPolicy.from_settings(settings, "https://as.example.com/token")
    assert policy.algorithms == frozenset({"ES256"})


def test_policy_refuses_a_bad_endpoint_or_alias() -> None:
    with pytest.raises(ConfigError) as error:
        DpopPolicy.from_settings(DpopSettings(htu_aliases=("/relative",)), "ftp://x/")
    assert len(error.value.problems) == 2
    assert error.value.problems[0].startswith("server.public_token_endpoint")
    assert error.value.problems[1].startswith("dpop.htu_aliases")


def test_normalize_htu_targets() -> None:
    assert normalize_htu_targets(["https://AS.example.com:443/par"]) == frozenset(
        {"https://as.example.com/par"})
    with pytest.raises(ValueError, match="htu"):
        normalize_htu_targets(["nope"])


def test_every_algorithm_is_asymmetric_and_bound_to_a_key_type() -> None:
    assert set(ALGORITHMS) == {"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256",
                                    "RS384", "RS512", "PS256", "PS384", "PS512"}
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.kty in ("EC", "OKP", "RSA"), name


def test_clearing_the_policy_caches_forgets_parsed_headers_never_a_decision() -> None:
    """What bench/dpop_micro.py's cold row relies on: after clearing the policy's caches
    (`headers`, `keys`) the next proof parses its header (and its key) again, and is judged
    exactly as before. The caches are the policy's own: another policy starts empty."""
    endpoint = "https://as.example.com/token"
    policy = DpopPolicy.from_settings(DpopSettings(), endpoint)
    key = DpopKey()
    now = time.time()

    def check(proof: str) -> object:
        return validate_proof((proof,), method="POST", policy=policy, now=now, nonces=None,
                              nonce_required=False)

    warm = check(key.proof(endpoint, jti="one", iat=now))
    assert isinstance(warm, DpopProof) and warm.jkt == key.jkt
    assert (len(policy.headers), len(policy.keys)) == (1, 1)
    fresh = DpopPolicy.from_settings(DpopSettings(), endpoint)
    assert (len(fresh.headers), len(fresh.keys)) == (0, 0) and fresh == policy
    policy.headers.clear()
    policy.keys.clear()
    cold = check(key.proof(endpoint, jti="one", iat=now))
    assert cold == warm
    assert len(policy.keys) == 1  # the key was parsed again: nothing kept
    assert isinstance(check(key.proof(endpoint + "/x", iat=now)), OAuthError)  # htu still read


# ---------------------------------------------------------------------------------------
# ath at a protected resource (RFC 9449 §4.3 step 12), on the RFC's own §7.1 example.

RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"  # §7.1


def _resource_check(token: str,
                    policy: DpopPolicy | None = None) -> DpopProof | OAuthError:
    return validate_proof((RFC_RESOURCE_PROOF,), method="GET",
                          policy=policy or RFC_POLICY, now=1562262618.0, nonces=None,
                          nonce_required=False, htu_targets=RFC_RESOURCE,
                          access_token=token)


def test_ath_is_the_hash_of_the_access_token() -> None:
    assert access_token_hash(RFC_ACCESS_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert isinstance(_resource_check(RFC_ACCESS_TOKEN), DpopProof)


def test_ath_of_another_token_is_refused() -> None:
    refused = _resource_check(RFC_ACCESS_TOKEN + "x")
    assert isinstance(refused, OAuthError)
    assert (refused.code, refused.result_code) == ("invalid_dpop_proof", "dpop.ath_mismatch")


def test_dpop_reject_ath_does_not_apply_at_a_resource() -> None:
    assert isinstance(_resource_check(RFC_ACCESS_TOKEN, replace(RFC_POLICY, reject_ath=True)),
                      DpopProof)
