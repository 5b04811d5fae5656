"""Unit tests of the DPoP building blocks: JWK thumbprints and parsing (sidecar.core.jwk),
windowed HMAC nonces (sidecar.core.nonces), htu normalisation and the policy
(sidecar.core.dpop). The RFC 9449 behaviour of `validate_proof` is in
tests/conformance/test_rfc9449.py."""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sidecar.core import dpop, jwk
from sidecar.core.dpop import DpopPolicy, normalize_htu, normalize_htu_targets
from sidecar.core.jwk import JwkError, PublicKeyInfo, public_key, thumbprint
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError
from sidecar.settings import ConfigError, DpopSettings
from tests.conformance.test_rfc9449 import RFC_POLICY, RFC_RESOURCE, RFC_RESOURCE_PROOF

# RFC 7638 §3.1
RFC7638_JWK = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
         "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR"
         "0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
         "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_JKT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
# RFC 9449 §4.2 key and §6.1 thumbprint
RFC9449_JWK = {"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
               "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"}
RFC9449_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
# RFC 8037 Appendix A.1/A.3: the Ed25519 key and its thumbprint
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519",
               "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_JKT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------------------------------
# Thumbprints (RFC 7638).


@pytest.mark.parametrize(("key", "expected"), [
    (RFC7638_JWK, RFC7638_JKT),
    (RFC9449_JWK, RFC9449_JKT),
    (RFC8037_JWK, RFC8037_JKT),
], ids=["rfc7638-3.1-rsa", "rfc9449-6.1-ec", "rfc8037-a.3-okp"])
def test_thumbprint_vectors(key: dict[str, str], expected: str) -> None:
    assert thumbprint(key) == expected
    parsed = public_key(key)
    assert isinstance(parsed, PublicKeyInfo)
    assert parsed.thumbprint == expected


def test_thumbprint_uses_only_required_members_in_order() -> None:
    reordered = dict(reversed(list(RFC9449_JWK.items())))
    extra = {**RFC9449_JWK, "kid": "x", "use": "sig", "alg": "ES256", "x5c": ["AAAA"]}
    assert thumbprint(reordered) == thumbprint(extra) == RFC9449_JKT


def test_thumbprint_oct_and_errors() -> None:
    # RFC 7638 §3.2 defines oct too (k, kty); thumbprint() computes it, public_key() refuses it.
    assert len(thumbprint({"kty": "oct", "k": "AAAA"})) == 43
    with pytest.raises(ValueError, match="kty"):
        thumbprint({"kty": "nope"})
    with pytest.raises(ValueError, match="'y'"):
        thumbprint({"kty": "EC", "crv": "P-256", "x": "AA"})


# ---------------------------------------------------------------------------------------
# public_key.


def _ec_jwk(curve: ec.EllipticCurve, crv: str, size: int) -> dict[str, str]:
    numbers = ec.generate_private_key(curve).public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64(numbers.x.to_bytes(size, "big")),
            "y": b64(numbers.y.to_bytes(size, "big"))}


def _rsa_jwk(bits: int) -> dict[str, str]:
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()
    return {"kty": "RSA", "e": "AQAB", "n": b64(numbers.n.to_bytes((bits + 7) // 8, "big"))}


@pytest.mark.parametrize(("key", "kty", "crv", "bits"), [
    (_ec_jwk(ec.SECP256R1(), "P-256", 32), "EC", "P-256", 256),
    (_ec_jwk(ec.SECP384R1(), "P-384", 48), "EC", "P-384", 384),
    (_ec_jwk(ec.SECP521R1(), "P-521", 66), "EC", "P-521", 521),
    (RFC8037_JWK, "OKP", "Ed25519", 256),
    (RFC7638_JWK, "RSA", "", 2048),
], ids=["p256", "p384", "p521", "ed25519", "rsa2048"])
def test_public_key_accepts(key: dict[str, str], kty: str, crv: str, bits: int) -> None:
    info = public_key(key)
    assert isinstance(info, PublicKeyInfo)
    assert (info.kty, info.crv, info.key_size) == (kty, crv, bits)
    assert info.thumbprint == thumbprint(key)
    # The same key as JSON text gives the same answer.
    as_text = public_key(json.dumps(key))
    assert isinstance(as_text, PublicKeyInfo)
    assert as_text.thumbprint == info.thumbprint


P256 = _ec_jwk(ec.SECP256R1(), "P-256", 32)
RSA_1024 = _rsa_jwk(1024)
N_BYTES = base64.urlsafe_b64decode(RFC7638_JWK["n"] + "==")


@pytest.mark.parametrize(("key", "reason"), [
    ({**P256, "d": "AAAA"}, "private_key"),
    ({**RFC7638_JWK, "d": "AAAA"}, "private_key"),
    ({**RFC7638_JWK, "p": "AAAA"}, "private_key"),
    ({**RFC7638_JWK, "qi": "AAAA"}, "private_key"),
    ({**RFC7638_JWK, "oth": []}, "private_key"),
    ({**RFC8037_JWK, "d": RFC8037_JWK["x"]}, "private_key"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "symmetric_key"),
    ({"kty": "oct"}, "symmetric_key"),
    ({"kty": "EC", "crv": "secp256k1", "x": P256["x"], "y": P256["y"]}, "unsupported_key"),
    ({"kty": "OKP", "crv": "Ed448", "x": "AA"}, "unsupported_key"),
    ({"kty": "OKP", "crv": "X25519", "x": RFC8037_JWK["x"]}, "unsupported_key"),
    ({"kty": "XYZ"}, "unsupported_key"),
    ({}, "bad_jwk"),
    ({"kty": 1}, "bad_jwk"),
    (RSA_1024, "unsupported_key"),
    ({**P256, "x": P256["x"][:-2]}, "bad_jwk"),  # short coordinate
    ({**P256, "x": P256["x"] + "="}, "bad_jwk"),  # padding
    ({**P256, "x": "+" + P256["x"][1:]}, "bad_jwk"),  # base64, not base64url
    ({**P256, "y": P256["x"]}, "bad_jwk"),  # not on the curve (almost surely)
    ({**P256, "x": 1}, "bad_jwk"),
    ({**P256, "x": ""}, "bad_jwk"),
    ({**RFC8037_JWK, "x": RFC8037_JWK["x"][:-4]}, "bad_jwk"),
    ({**RFC7638_JWK, "n": b64(b"\0" + N_BYTES)}, "bad_jwk"),  # leading zero: two thumbprints
    ({**RFC7638_JWK, "e": "AAEAAQ"}, "bad_jwk"),  # leading zero in e
    ({**RFC7638_JWK, "e": "AQAA"}, "bad_jwk"),  # even exponent
    ({**RFC7638_JWK, "e": "AQ"}, "bad_jwk"),  # e = 1
    ({**RFC7638_JWK, "e": b64((2**40 + 1).to_bytes(6, "big"))}, "bad_jwk"),  # huge e
    ({**RFC7638_JWK, "n": b64(b"\xff" * 1025)}, "unsupported_key"),  # > 8192 bits
], ids=lambda v: v if isinstance(v, str) else "")
def test_public_key_refuses(key: dict[str, object], reason: str) -> None:
    result = public_key(key)
    assert isinstance(result, JwkError)
    assert result.reason == reason


@pytest.mark.parametrize("text", ["", "[]", "nul", "{", '"x"', "[" * 5000, "{" * 5000,
                                  "x" * 20_000, '{"kty":"EC","x":NaN}'])
def test_public_key_text_never_raises(text: str) -> None:
    assert isinstance(public_key(text), JwkError)


def test_public_key_unserialisable_mapping() -> None:
    assert isinstance(public_key({"kty": "EC", "x": object()}), JwkError)
    assert isinstance(public_key({"kty": "EC", "x": math.nan}), JwkError)


def test_public_key_is_cached_once_per_key() -> None:
    key = _ec_jwk(ec.SECP256R1(), "P-256", 32)
    first = public_key(key)
    assert public_key(dict(reversed(list(key.items())))) is first  # keyed by sorted JSON


def test_bounded_cache_evicts_least_recently_used() -> None:
    cache: jwk.BoundedCache[str, int] = jwk.BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


def test_ed25519_generated_key_roundtrip() -> None:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    info = public_key({"kty": "OKP", "crv": "Ed25519", "x": b64(raw)})
    assert isinstance(info, PublicKeyInfo)
    assert info.key.public_bytes_raw() == raw  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "expected"), [
    ("", b""), ("AA", b"\0"), ("AAA", b"\0\0"), ("AAAA", b"\0\0\0"), ("_-8", b"\xff\xef"),
    ("A", None), ("AA==", None), ("A+", None), ("A/", None), ("A A", None), ("é", None),
    ("AB", None), ("AAB", None), ("AQ", b"\x01"), ("AAE", b"\0\x01"),  # RFC 4648 §3.5
])
def test_b64url_decode_is_strict(text: str, expected: bytes | None) -> None:
    assert jwk.b64url_decode(text) == expected


# ---------------------------------------------------------------------------------------
# Windowed HMAC nonces.

SECRET_A = "a" * 40
SECRET_B = "b" * 40
T0 = 1_700_000_000.0  # step 28333333, 20 s into it
NQCHAR = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def nonces(*secrets: str, purpose: str = "dpop-nonce", window: int = 2) -> WindowedHmac:
    return WindowedHmac(secrets or (SECRET_A,), 60, window, purpose)


def test_nonce_shape_is_nqchar_base64url() -> None:
    value = nonces().issue(T0)
    assert len(value) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)
    assert NQCHAR.fullmatch(value)


def test_nonce_is_stable_within_a_step_and_changes_between_steps() -> None:
    issuer = nonces()
    step_start = math.floor(T0 / 60) * 60
    assert issuer.issue(step_start) == issuer.issue(step_start + 59.999)
    assert issuer.issue(step_start) != issuer.issue(step_start + 60)


@pytest.mark.parametrize(("issued_offset", "accepted"), [
    (0, True), (-60, True), (-120, True), (-180, False), (-600, False),
    (60, True), (120, True), (180, False),
])
def test_nonce_window(issued_offset: float, accepted: bool) -> None:
    value = nonces().issue(T0 + issued_offset)
    assert nonces().verify(value, T0) is accepted


def test_nonce_lifetime_is_at_least_window_steps() -> None:
    issuer = nonces()
    value = issuer.issue(T0)
    step_end = (math.floor(T0 / 60) + 1) * 60
    assert issuer.verify(value, T0 + 120)  # at least two full steps
    assert issuer.verify(value, step_end + 119.999)
    assert not issuer.verify(value, step_end + 120)
    assert issuer.lifetime_seconds == 180


def test_nonce_window_zero() -> None:
    issuer = nonces(window=0)
    value = issuer.issue(T0)
    assert issuer.verify(value, T0 + 30)
    assert not issuer.verify(value, T0 + 60)


def test_every_replica_with_the_secret_accepts_every_replicas_nonces() -> None:
    replica_1, replica_2 = nonces(), nonces()
    assert replica_1.issue(T0) == replica_2.issue(T0)
    assert replica_2.verify(replica_1.issue(T0 - 70), T0)


def test_rotation_first_signs_all_verify() -> None:
    old = nonces(SECRET_A)
    during = nonces(SECRET_B, SECRET_A)  # new secret added on top
    after = nonces(SECRET_B)  # old secret removed
    assert during.issue(T0) == after.issue(T0) != old.issue(T0)
    assert during.verify(old.issue(T0), T0)  # nonces handed out before the rotation
    assert old.verify(during.issue(T0), T0) is False  # a replica not yet rotated
    assert after.verify(old.issue(T0), T0) is False


def test_purpose_separates_nonces() -> None:
    dpop_nonces = nonces(purpose="dpop-nonce")
    challenges = nonces(purpose="attestation-challenge")
    assert dpop_nonces.issue(T0) != challenges.issue(T0)
    assert not challenges.verify(dpop_nonces.issue(T0), T0)
    assert not dpop_nonces.verify(challenges.issue(T0), T0)


@pytest.mark.parametrize("value", [None, 1, b"x", "", "x" * 42, "x" * 44, "+" * 43,
                                   "é" * 43, "A" * 42 + "=", "A" * 43, "\x00" * 43])
def test_nonce_verify_refuses_garbage(value: object) -> None:
    assert nonces().verify(value, T0) is False


@pytest.mark.parametrize("now", [math.nan, math.inf, -math.inf])
def test_nonce_verify_with_a_broken_clock_is_false(now: float) -> None:
    assert nonces().verify(nonces().issue(T0), now) is False


def test_nonce_verify_far_times_do_not_raise() -> None:
    issuer = nonces()
    assert issuer.verify(issuer.issue(1e300), 1e300)
    assert issuer.verify(issuer.issue(-1e12), -1e12)


@pytest.mark.parametrize(("secrets", "step", "window", "purpose"), [
    ((), 60, 2, "p"), (("",), 60, 2, "p"), (("s",), 0, 2, "p"), (("s",), 60, -1, "p"),
    (("s",), 60, 2, ""), (("s",), 60, 2, "a\x00b"),
])
def test_nonce_config_errors(secrets: tuple[str, ...], step: int, window: int,
                             purpose: str) -> None:
    with pytest.raises(ValueError):
        WindowedHmac(secrets, step, window, purpose)


def test_nonce_issue_is_memoised() -> None:
    issuer = nonces()
    first = issuer.issue(T0)
    assert issuer.issue(T0 + 1) is first


# ---------------------------------------------------------------------------------------
# htu normalisation (RFC 9449 §4.3, RFC 3986 §6.2.2, §6.2.3).


@pytest.mark.parametrize(("url", "expected"), [
    ("https://as.example.com/token", "https://as.example.com/token"),
    ("HTTPS://AS.EXAMPLE.COM/token", "https://as.example.com/token"),
    ("https://as.example.com:443/token", "https://as.example.com/token"),
    ("http://as.example.com:80/token", "http://as.example.com/token"),
    ("http://as.example.com:443/token", "http://as.example.com:443/token"),
    ("https://as.example.com:8443/token", "https://as.example.com:8443/token"),
    ("https://as.example.com:/token", "https://as.example.com/token"),
    ("https://as.example.com", "https://as.example.com/"),
    ("https://as.example.com?x", "https://as.example.com/"),
    ("https://as.example.com/token?a=b#c", "https://as.example.com/token"),
    ("https://as.example.com/token#c?d", "https://as.example.com/token"),
    ("https://as.example.com/token?a b", "https://as.example.com/token"),  # query not parsed
    ("https://as.example.com/%7etoken", "https://as.example.com/~token"),
    ("https://as.example.com/a%2fb", "https://as.example.com/a%2Fb"),
    ("https://as.example.com/./a/../b/.", "https://as.example.com/b/"),
    ("https://as.example.com/%2E%2E/b", "https://as.example.com/b"),
    ("https://as.example.com/a//b", "https://as.example.com/a//b"),
    ("https://as.example.com/TOKEN", "https://as.example.com/TOKEN"),  # path is case-sensitive
    ("https://[2001:DB8::1]:443/t", "https://[2001:db8::1]/t"),
    ("https://[::1]:8443/t", "https://[::1]:8443/t"),
    ("https://127.0.0.1/t", "https://127.0.0.1/t"),
    ("https://as.example.com:0443/t", "https://as.example.com/t"),
    # Not an absolute http(s) URI without userinfo:
    ("/token", None), ("as.example.com/token", None), ("ftp://as.example.com/", None),
    ("https:as.example.com/token", None), ("https:///token", None), ("https://", None),
    ("https://user@as.example.com/", None), ("https://u:p@as.example.com/", None),
    ("https://as.example.com:99999/", None), ("https://as.example.com:x/", None),
    ("https://as.example.com:-1/", None), ("https://[::1/t", None), ("https://[]/t", None),
    ("https://a]b/t", None), ("https://[::1]x/t", None),
    ("https://as.example.com/a%zz", None), ("https://as.example.com/a%", None),
    ("https://as.example.com/a%4", None), ("https://as%2eexample.com/", None),
    ("https://as.example.com/to\tken", None), ("https://as.example.com/to\nken", None),
    ("https://as.example.com/to ken", None), ("https://as.exämple.com/", None),
    ("https://as.example.com/" + "a" * 3000, None), ("", None),
])
def test_normalize_htu(url: str, expected: str | None) -> None:
    assert normalize_htu(url) == expected


def test_normalize_htu_not_a_string() -> None:
    assert normalize_htu(123) is None  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# The policy.


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
    assert set(dpop.ALGORITHMS) == {"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256",
                                    "RS384", "RS512", "PS256", "PS384", "PS512"}
    for name, algorithm in dpop.ALGORITHMS.items():
        assert algorithm.kty in ("EC", "OKP", "RSA"), name


def test_clear_caches() -> None:
    dpop.clear_caches()
    jwk.clear_cache()
    assert normalize_htu("https://as.example.com/x") == "https://as.example.com/x"


# ---------------------------------------------------------------------------------------
# ath at a protected resource (RFC 9449 §4.3 step 12), on the RFC's own §7.1 example.

RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"  # §7.1


def _resource_check(token: str,
                    policy: DpopPolicy | None = None) -> dpop.DpopProof | OAuthError:
    return dpop.validate_proof((RFC_RESOURCE_PROOF,), method="GET",
                               policy=policy or RFC_POLICY, now=1562262618.0, nonces=None,
                               nonce_required=False, htu_targets=RFC_RESOURCE,
                               access_token=token)


def test_ath_is_the_hash_of_the_access_token() -> None:
    assert dpop.access_token_hash(RFC_ACCESS_TOKEN) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    assert isinstance(_resource_check(RFC_ACCESS_TOKEN), dpop.DpopProof)


def test_ath_of_another_token_is_refused() -> None:
    refused = _resource_check(RFC_ACCESS_TOKEN + "x")
    assert isinstance(refused, OAuthError)
    assert (refused.code, refused.result_code) == ("invalid_dpop_proof", "dpop.ath_mismatch")


def test_dpop_reject_ath_does_not_apply_at_a_resource() -> None:
    assert isinstance(_resource_check(RFC_ACCESS_TOKEN, replace(RFC_POLICY, reject_ath=True)),
                      dpop.DpopProof)
