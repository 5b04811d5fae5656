"""The hand-written ES256 fast path and the other verifiers (sidecar.core.jose.algorithms;
RFC 7515 §5.2, Appendix A.3, RFC 7518 §3.4): published vectors, signatures made with
`cryptography`, and what must not verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sidecar.core.jose.algorithms import (
    ALGORITHMS,
    EmbeddedKeyHeader,
    VerifiedHeaders,
    remembered_isinstance,
)
from sidecar.core.jose.compact import b64url_decode, signing_input, split_compact
from sidecar.core.jose.keys import PublicKeyInfo, public_key

ES256 = ALGORITHMS["ES256"]
# P-256 group order (SEC 2 §2.4.2): a signature's r and s lie in [1, N - 1].
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551

# RFC 7515 Appendix A.3: an ES256 JWS, its key and its R || S signature.
A3_JWK = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
A3_JWS = ("eyJhbGciOiJFUzI1NiJ9"
          ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290"
          "Ijp0cnVlfQ"
          ".DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q")

# RFC 9449 §4.1 (token request) and §7.1 (resource request): proofs signed by the §4.2 key.
RFC9449_HEADER = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19")
RFC9449_PROOFS = [
    RFC9449_HEADER + ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8v"
    "c2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8ig"
    "iMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg",
    RFC9449_HEADER + ".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9y"
    "ZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8y"
    "cjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA"
    "1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA",
]


def key_info(jwk: Mapping[str, object]) -> PublicKeyInfo:
    info = public_key(jwk)
    assert isinstance(info, PublicKeyInfo), info
    return info


def pieces(token: str) -> tuple[bytes, bytes]:
    """The signing input and the signature of a compact JWS."""
    segments = split_compact(token)
    assert segments is not None
    signature = b64url_decode(segments[2])
    assert signature is not None
    return signing_input(segments[0], segments[1]), signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(key: ec.EllipticCurvePrivateKey, crv: str, size: int) -> dict[str, object]:
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": crv, "x": b64(numbers.x.to_bytes(size, "big")),
            "y": b64(numbers.y.to_bytes(size, "big"))}


def raw_signature(key: ec.EllipticCurvePrivateKey, data: bytes,
                  hash_algorithm: hashes.HashAlgorithm | None = None) -> tuple[int, int]:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hash_algorithm or hashes.SHA256())))
    return r, s


def r_s(r: int, s: int, size: int = 32) -> bytes:
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def test_rfc7515_appendix_a3() -> None:
    data, signature = pieces(A3_JWS)
    assert ES256.verify(key_info(A3_JWK).key, signature, data)
    assert not ES256.verify(key_info(A3_JWK).key, signature, data + b"x")


@pytest.mark.parametrize("proof", RFC9449_PROOFS, ids=["rfc9449-4.1", "rfc9449-7.1"])
def test_rfc9449_proofs_verify_with_their_embedded_key(proof: str) -> None:
    header = json.loads(base64.urlsafe_b64decode(RFC9449_HEADER + "=="))
    data, signature = pieces(proof)
    assert ES256.verify(key_info(header["jwk"]).key, signature, data)


def test_signatures_made_with_cryptography_verify() -> None:
    for index in range(20):
        key = ec.generate_private_key(ec.SECP256R1())
        data = f"header.payload-{index}".encode()
        signature = r_s(*raw_signature(key, data))
        info = key_info(jwk_of(key, "P-256", 32))
        assert ES256.verify(info.key, signature, data)
        assert ES256.fits(info)


@pytest.fixture
def signed() -> tuple[PublicKeyInfo, bytes, int, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"eyJhbGciOiJFUzI1NiJ9.e30"
    r, s = raw_signature(key, data)
    return key_info(jwk_of(key, "P-256", 32)), data, r, s


def test_the_high_s_twin_verifies_as_ecdsa_allows(
        signed: tuple[PublicKeyInfo, bytes, int, int]) -> None:
    """(r, N - s) is the same signature to ECDSA, and RFC 7518 §3.4 does not ask for low S.
    Nothing keys on the signature bytes: a replay is the same `jti`, not the same bytes."""
    info, data, r, s = signed
    assert ES256.verify(info.key, r_s(r, N - s), data)


@pytest.mark.parametrize("case", ["s=0", "r=0", "s=N", "r=N", "s+N", "flipped"])
def test_out_of_range_or_altered_signatures_are_refused(
        signed: tuple[PublicKeyInfo, bytes, int, int], case: str) -> None:
    info, data, r, s = signed
    signature = {
        "s=0": r_s(r, 0), "r=0": r_s(0, s), "s=N": r_s(r, N), "r=N": r_s(N, s),
        # s + N no longer fits 32 octets: the low 256 bits are a different number.
        "s+N": r_s(r, (s + N) % (1 << 256)),
        "flipped": r_s(r, s ^ 1),
    }[case]
    assert not ES256.verify(info.key, signature, data)


@pytest.mark.parametrize("length", [0, 1, 63, 65, 70, 128])
def test_truncated_or_padded_signatures_are_refused(
        signed: tuple[PublicKeyInfo, bytes, int, int], length: int) -> None:
    info, data, r, s = signed
    full = r_s(r, s)
    signature = full[:length] if length <= 64 else full + b"\0" * (length - 64)
    assert not ES256.verify(info.key, signature, data)


def test_a_der_signature_is_not_a_jws_signature() -> None:
    # Some signers send the DER form; RFC 7518 §3.4 says R || S, and nothing else verifies.
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"x.y"
    der = key.sign(data, ec.ECDSA(hashes.SHA256()))
    assert not ES256.verify(key_info(jwk_of(key, "P-256", 32)).key, der, data)


def test_wrong_curve_and_wrong_key_type() -> None:
    data = b"eyJhbGciOiJFUzI1NiJ9.e30"
    p384 = ec.generate_private_key(ec.SECP384R1())
    p384_info = key_info(jwk_of(p384, "P-384", 48))
    assert not ES256.fits(p384_info)  # RFC 7518 §3.4: ES256 is P-256 with SHA-256
    # A P-384 signature of the same data, cut or not to ES256's 64 octets, never verifies.
    r, s = raw_signature(p384, data, hash_algorithm=hashes.SHA256())
    assert not ES256.verify(p384_info.key, r_s(r, s, 48), data)
    assert not ES256.verify(p384_info.key, r_s(r, s, 48)[:64], data)
    ed = ed25519.Ed25519PrivateKey.generate()
    assert not ES256.verify(ed.public_key(), ed.sign(data), data)
    # ES384 over the same key hashes with SHA-384: a SHA-256 signature is not one of its own.
    assert not ALGORITHMS["ES384"].verify(p384_info.key, r_s(r, s, 48), data)


def test_remembered_isinstance_answers_as_isinstance_does() -> None:
    # cryptography's key classes are registered virtual subclasses of its ABCs: the check
    # remembers those that passed, and never lets another class through for having asked.
    is_ec_key = remembered_isinstance(ec.EllipticCurvePublicKey)  # type: ignore[type-abstract]
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    ed_key = ed25519.Ed25519PrivateKey.generate().public_key()
    for _ in range(2):  # the second round answers from what the first one remembered
        assert is_ec_key(ec_key)
        assert not is_ec_key(ed_key)
        assert not is_ec_key(ec.generate_private_key(ec.SECP256R1()))  # a private key
        assert not is_ec_key(None)
        assert not is_ec_key(object())
    is_ed_key = remembered_isinstance(ed25519.Ed25519PublicKey)  # type: ignore[type-abstract]
    assert is_ed_key(ed_key)


def test_a_key_of_another_type_is_refused_after_the_right_one_verified() -> None:
    # Each verifier's key check is remembered per class (the fast path): a wrong key type
    # must still be refused, also once a right one has passed, and never raise.
    data = b"eyJhbGciOiJFUzI1NiJ9.e30"
    ec_private = ec.generate_private_key(ec.SECP256R1())
    ec_signature = r_s(*raw_signature(ec_private, data), 32)
    ed_private = ed25519.Ed25519PrivateKey.generate()
    ed_signature = ed_private.sign(data)
    for _ in range(2):
        assert ES256.verify(ec_private.public_key(), ec_signature, data)
        assert ALGORITHMS["EdDSA"].verify(ed_private.public_key(), ed_signature, data)
        assert not ES256.verify(ed_private.public_key(), ec_signature, data)
        assert not ALGORITHMS["EdDSA"].verify(ec_private.public_key(), ed_signature, data)
        assert not ALGORITHMS["RS256"].verify(ec_private.public_key(), ed_signature, data)


def test_verified_headers_keep_a_header_only_once_its_signature_verified() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    info = key_info(jwk_of(key, "P-256", 32))
    header = EmbeddedKeyHeader("ES256", ES256, info)
    cache = VerifiedHeaders(maxsize=2)
    encoded_header, encoded_payload = "aGVhZGVy", "cGF5bG9hZA"
    data = signing_input(encoded_header, encoded_payload)
    assert not cache.verify(header, encoded_header, encoded_payload, b"\0" * 64)
    assert cache.get(encoded_header) is None and len(cache) == 0  # forged: never kept
    assert cache.verify(header, encoded_header, encoded_payload, r_s(*raw_signature(key, data)))
    assert cache.get(encoded_header) is header
