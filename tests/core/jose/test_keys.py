"""Public JWKs and their RFC 7638 thumbprints (sidecar.core.jose.keys; RFC 7517, RFC 7518 §6,
RFC 8037, RFC 7638)."""

from __future__ import annotations

import base64
import json
import math

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from sidecar.core.jose.keys import JwkError, KeyCache, PublicKeyInfo, public_key, thumbprint

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
    cache: KeyCache = KeyCache(8)  # the caller's own: no module-level cache
    first = public_key(key, cache=cache)
    assert public_key(dict(reversed(list(key.items()))), cache=cache) is first  # sorted JSON
    assert len(cache) == 1


def test_ed25519_generated_key_roundtrip() -> None:
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    info = public_key({"kty": "OKP", "crv": "Ed25519", "x": b64(raw)})
    assert isinstance(info, PublicKeyInfo)
    assert info.key.public_bytes_raw() == raw  # type: ignore[union-attr]
