"""Key sets and signature checks (sidecar.core.jose.key_sets; RFC 7517 §4.7, §5, RFC 7518 §3.2)."""

from __future__ import annotations

import base64
import datetime
import json

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm

from sidecar.core.jose.algorithms import hmac_key_long_enough
from sidecar.core.jose.compact import parse_compact_jws
from sidecar.core.jose.key_sets import (
    JwksError,
    parse_jwks,
    select_keys,
    verify_hmac,
    verify_signature,
)
from tests.support.keys import ec_key, public_jwk


def self_signed(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------------------------
# parse_jwks


def test_parse_jwks_reads_signing_keys_with_kid_alg_and_x5c() -> None:
    key = ec_key()
    der = self_signed(key)
    document = {"keys": [public_jwk(key, kid="k1", alg="ES256", use="sig",
                                    x5c=[base64.b64encode(der).decode()])]}
    (entry,) = parse_jwks(document, strict=True)
    assert (entry.kid, entry.alg, entry.x5c) == ("k1", "ES256", (der,))
    assert entry.x5t_s256 is not None and len(entry.x5t_s256) == 43
    assert parse_jwks(json.dumps(document), strict=True) == (entry,)  # JSON text too
    assert "k1" in repr(entry)


def test_parse_jwks_skips_keys_for_other_uses() -> None:
    sig, enc, wrap = ec_key(), ec_key(), ec_key()
    document = {"keys": [public_jwk(enc, use="enc"), public_jwk(wrap, key_ops=["wrapKey"]),
                         public_jwk(sig, kid="s")]}
    assert [e.kid for e in parse_jwks(document, strict=True)] == ["s"]


@pytest.mark.parametrize(("member", "message"), [
    ({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}, "coordinates"),
    ({"kty": "oct", "k": "c2VjcmV0"}, "symmetric"),
    ("not an object", "not a JSON object"),
    ({**public_jwk(ec_key()), "kid": 7}, "kid"),
    ({**public_jwk(ec_key()), "alg": "HS256"}, "alg"),
    ({**public_jwk(ec_key()), "x5c": "AAAA"}, "x5c"),
    ({**public_jwk(ec_key()), "x5c": ["%%%"]}, "x5c"),
])
def test_parse_jwks_strict_refuses_unusable_keys(member: object, message: str) -> None:
    with pytest.raises(JwksError, match=message):
        parse_jwks({"keys": [member]}, strict=True)


def test_parse_jwks_lenient_skips_unusable_keys_but_needs_one() -> None:
    good = ec_key()
    document = {"keys": [{"kty": "oct", "k": "c2VjcmV0"}, public_jwk(good, kid="g")]}
    assert [e.kid for e in parse_jwks(document, strict=False)] == ["g"]
    with pytest.raises(JwksError, match="no usable"):
        parse_jwks({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, strict=False)


def test_parse_jwks_refuses_private_keys_even_when_lenient() -> None:
    key = ec_key()
    private = json.loads(ECAlgorithm.to_jwk(key))
    with pytest.raises(JwksError, match="private"):
        parse_jwks({"keys": [private]}, strict=False)


def test_parse_jwks_x5c_must_hold_the_jwk_key() -> None:
    # RFC 7517 §4.7: the first certificate's key is the JWK's key.
    der = self_signed(ec_key())
    member = public_jwk(ec_key(), x5c=[base64.b64encode(der).decode()])
    with pytest.raises(JwksError, match="first x5c"):
        parse_jwks({"keys": [member]}, strict=True)


@pytest.mark.parametrize("document", [{}, {"keys": {}}, [], "{", "null", {"keys": []}])
def test_parse_jwks_refuses_non_sets(document: object) -> None:
    with pytest.raises(JwksError):
        parse_jwks(document, strict=False)


def test_select_keys_by_alg_kid_and_type() -> None:
    p256, rsa_key = ec_key(), rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = parse_jwks({"keys": [public_jwk(p256, kid="e"), public_jwk(rsa_key, kid="r"),
                                public_jwk(ec_key(), kid="e2", alg="ES256")]}, strict=True)
    assert [k.kid for k in select_keys(keys, "ES256", None)] == ["e", "e2"]
    assert [k.kid for k in select_keys(keys, "ES256", "e2")] == ["e2"]
    assert [k.kid for k in select_keys(keys, "PS256", None)] == ["r"]
    assert select_keys(keys, "ES384", None) == []  # P-256 keys cannot do ES384
    assert select_keys(keys, "none", None) == []
    assert select_keys(keys, "HS256", None) == []


# ---------------------------------------------------------------------------------------
# Signatures


def test_verify_signature_with_the_right_key_only() -> None:
    key, other = ec_key(), ec_key()
    keys = parse_jwks({"keys": [public_jwk(key, kid="a"), public_jwk(other, kid="b")]},
                      strict=True)
    token = jwt.encode({"sub": "x"}, key, algorithm="ES256", headers={"kid": "a"})
    jws = parse_compact_jws(token)
    assert jws is not None and jws.kid == "a" and jws.alg == "ES256"
    assert verify_signature(jws, "ES256", select_keys(keys, "ES256", "a"))
    assert not verify_signature(jws, "ES256", select_keys(keys, "ES256", "b"))
    assert not verify_signature(jws, "none", keys)
    assert "ES256" in repr(jws)


def test_verify_hmac_and_key_length() -> None:
    secret = "ünïcödé + % : secret that is long enough!!".encode()
    token = jwt.encode({"sub": "x"}, secret, algorithm="HS256")
    jws = parse_compact_jws(token)
    assert jws is not None
    assert verify_hmac(jws, "HS256", secret)
    assert not verify_hmac(jws, "HS256", secret + b"x")
    assert not verify_hmac(jws, "HS384", secret)
    assert not verify_hmac(jws, "RS256", secret)
    assert hmac_key_long_enough("HS256", b"x" * 32)
    assert not hmac_key_long_enough("HS256", b"x" * 31)
    assert not hmac_key_long_enough("HS512", b"x" * 63)
    assert not hmac_key_long_enough("RS256", b"x" * 512)
