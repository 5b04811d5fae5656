"""JWS algorithms and signature verification (RFC 7515 §5.2, RFC 7518 §3, RFC 8037 §3.1).

`ALGORITHMS`: the registered asymmetric algorithms only, each tied to the key type and curve
it may be used with (RFC 7518 §3.1); `none` and the HMAC algorithms are not in it, so a
caller that looks an `alg` up there can never be talked into an unsigned or MACed token
(RFC 8725 §3.1). `HMAC_ALGORITHMS` are apart, for `client_secret_jwt` only.

The fast path. ES256 verification is hand-written over `cryptography`: the JWS signature
`R || S` is turned into DER and verified directly, no JOSE library in between. And
`VerifiedHeaders` keeps a header that carries its own key (DPoP's `jwk`) - key object and
thumbprint included - once a signature made with it has verified, so that the next proof of
the same client costs one lookup, not a JWK parse. Unsigned or garbage headers never enter
it. Both are pinned by tests/core/jose/test_algorithms.py (RFC 7515 Appendix A.3, RFC 9449
§4.1 and §7.1, signatures made with `cryptography`, and what must not verify) and by the DPoP
vectors of tests/conformance/test_rfc9449.py.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeGuard, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.jose.compact import signing_input
from sidecar.core.jose.keys import PublicKey, PublicKeyInfo

Verifier = Callable[[PublicKey, bytes, bytes], bool]
K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Algorithm:
    kty: str
    crv: str
    verify: Verifier

    def fits(self, key: PublicKeyInfo) -> bool:
        """RFC 7518 §3.1: the key is of the type and curve the algorithm is defined for."""
        return key.kty == self.kty and (not self.crv or key.crv == self.crv)


def remembered_isinstance(abstract: type[K]) -> Callable[[object], TypeGuard[K]]:
    """`isinstance(value, abstract)` for one of cryptography's key ABCs, remembering the
    concrete classes that passed.

    Fast path: cryptography's key classes (Rust) are *registered* virtual subclasses of its
    ABCs, and CPython never caches a class it finds directly in an ABC's registry (`_abc.c`,
    `subclasscheck_check_registry`): every `isinstance` misses the cache and calls
    `ABCMeta.__subclasscheck__`, a Python frame (py-spy: 2.7 µs of a DPoP request under
    load, the cold path of an ABC). Whether a class is a subclass does not change while the
    process runs (an ABC has no unregister), so the answer is kept; the set holds at most
    the classes that implement the ABC.
    """
    passed: set[type] = set()

    def check(value: object) -> TypeGuard[K]:
        cls = type(value)
        if cls in passed:
            return True
        if isinstance(value, abstract):
            passed.add(cls)
            return True
        return False

    return check


# The classes are abstract by design (the ABCs): mypy's type-abstract is about type[K]
# values that get instantiated, which these never are.
_is_ec_key: Final = remembered_isinstance(ec.EllipticCurvePublicKey)  # type: ignore[type-abstract]
_is_rsa_key: Final = remembered_isinstance(rsa.RSAPublicKey)  # type: ignore[type-abstract]
_is_ed25519_key: Final = remembered_isinstance(Ed25519PublicKey)  # type: ignore[type-abstract]


def _ecdsa(hash_algorithm: hashes.HashAlgorithm, size: int) -> Verifier:
    signature_algorithm = ec.ECDSA(hash_algorithm)

    def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.4: the JWS signature is R || S, each exactly `size` octets.
        if len(signature) != 2 * size or not _is_ec_key(key):
            return False
        der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                   int.from_bytes(signature[size:], "big"))
        try:
            key.verify(der, data, signature_algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify


def _rsa(padding_: padding.AsymmetricPadding, hash_algorithm: hashes.HashAlgorithm) -> Verifier:
    def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
        if not _is_rsa_key(key):
            return False
        try:
            key.verify(signature, data, padding_, hash_algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify


def _pss(hash_algorithm: hashes.HashAlgorithm) -> Verifier:
    # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
    return _rsa(padding.PSS(padding.MGF1(hash_algorithm), hash_algorithm.digest_size),
                hash_algorithm)


def _eddsa(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64 or not _is_ed25519_key(key):
        return False
    try:
        key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


ALGORITHMS: Final[Mapping[str, Algorithm]] = {
    "ES256": Algorithm("EC", "P-256", _ecdsa(hashes.SHA256(), 32)),
    "ES384": Algorithm("EC", "P-384", _ecdsa(hashes.SHA384(), 48)),
    "ES512": Algorithm("EC", "P-521", _ecdsa(hashes.SHA512(), 66)),
    "EdDSA": Algorithm("OKP", "Ed25519", _eddsa),
    "Ed25519": Algorithm("OKP", "Ed25519", _eddsa),  # RFC 9864 fully-specified name
    "RS256": Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA256())),
    "RS384": Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA384())),
    "RS512": Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA512())),
    "PS256": Algorithm("RSA", "", _pss(hashes.SHA256())),
    "PS384": Algorithm("RSA", "", _pss(hashes.SHA384())),
    "PS512": Algorithm("RSA", "", _pss(hashes.SHA512())),
}

HMAC_ALGORITHMS: Final[Mapping[str, str]] = {"HS256": "sha256", "HS384": "sha384",
                                             "HS512": "sha512"}


def hmac_matches(alg: str, secret: bytes, signature: bytes, data: bytes) -> bool:
    """RFC 7518 §3.2, compared in constant time; False for an alg that is not HS*."""
    digest = HMAC_ALGORITHMS.get(alg)
    if digest is None:
        return False
    return hmac.compare_digest(hmac.new(secret, data, digest).digest(), signature)


def hmac_key_long_enough(alg: str, secret: bytes) -> bool:
    """RFC 7518 §3.2: "A key of the same size as the hash output ... or larger MUST be used"."""
    digest = HMAC_ALGORITHMS.get(alg)
    return digest is not None and len(secret) >= hashlib.new(digest).digest_size


# ---------------------------------------------------------------------------------------
# Headers that carry their own key, cached once verified.


@dataclass(frozen=True, slots=True)
class EmbeddedKeyHeader:
    """A checked JOSE header whose `jwk` is the verification key (RFC 9449 §4.2)."""

    alg: str
    algorithm: Algorithm
    key: PublicKeyInfo


class VerifiedHeaders:
    """Checked headers by their base64url text, kept once a signature made with them has
    verified (bounded LRU): a header only enters with a valid signature, so garbage and
    forged headers cannot evict the keys of real clients."""

    __slots__ = ("_cache",)

    def __init__(self, maxsize: int = 4096) -> None:
        self._cache: BoundedCache[str, EmbeddedKeyHeader] = BoundedCache(maxsize)

    def get(self, encoded_header: str) -> EmbeddedKeyHeader | None:
        return self._cache.get(encoded_header)

    def verify(self, header: EmbeddedKeyHeader, encoded_header: str, encoded_payload: str,
               signature: bytes) -> bool:
        """RFC 7515 §5.2 step 8 with the header's own key; the header is kept when it holds."""
        data = signing_input(encoded_header, encoded_payload)
        if not header.algorithm.verify(header.key.key, signature, data):
            return False
        self._cache.put(encoded_header, header)
        return True

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)
