"""Public JSON Web Keys: RFC 7638 thumbprints and a bounded cache of parsed public keys.

Used for the `jwk` header of DPoP proofs (RFC 9449 §4.2) and, later, for the `cnf.jwk` of
client attestations. Nothing here knows about OAuth errors: a refused key is a `JwkError`
value with a stable `reason`, and each caller maps it to its own error code.

Accepted keys (everything else is refused, never raised):
- `EC` on P-256, P-384, P-521 (RFC 7518 §6.2), the point checked to be on the curve;
- `OKP` Ed25519 (RFC 8037 §2);
- `RSA` of 2048 to 8192 bits (RFC 7518 §6.3; the floor is RFC 7518 §3.3's "2048 bits or larger",
  the ceiling bounds the cost of a verification an attacker can ask for).
A private member (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2 `d`) or a symmetric key (`oct`,
RFC 7518 §6.4) is refused: a proof-of-possession key must be public (RFC 9449 §4.3 step 7).

Member encodings are checked to be canonical (base64url without padding, exact coordinate
lengths for EC and OKP, no leading zero octet for RSA `n` and `e`, RFC 7518 §6.2.1.2,
§6.3.1.1), so that one key has exactly one thumbprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.jose.compact import b64url_decode, b64url_encode

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | Ed25519PublicKey

# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
REQUIRED_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
    "oct": ("k", "kty"),
}

# RFC 7518 §6.2.2, §6.3.2 (including `oth`), §6.4.1 and RFC 8037 §2.
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_EC_CURVES: Final[Mapping[str, tuple[ec.EllipticCurve, int]]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}
RSA_MIN_BITS: Final = 2048
RSA_MAX_BITS: Final = 8192
RSA_MAX_EXPONENT_BITS: Final = 32  # 65537 in practice; a huge `e` only makes verifying slow
MAX_JWK_JSON_LENGTH: Final = 8192  # a JWK given as text, before it is parsed

JwkErrorReason = Literal["bad_jwk", "private_key", "symmetric_key", "unsupported_key"]


@dataclass(frozen=True, slots=True)
class JwkError:
    """Why a JWK was refused. `reason` is stable (callers build result codes from it);
    `message` is a short sentence that may be sent to the client."""

    reason: JwkErrorReason
    message: str


@dataclass(frozen=True, slots=True)
class PublicKeyInfo:
    key: PublicKey
    kty: str  # "EC" | "RSA" | "OKP"
    crv: str  # "P-256" | "P-384" | "P-521" | "Ed25519"; "" for RSA
    thumbprint: str  # RFC 7638, SHA-256, base64url without padding
    key_size: int  # bits


def thumbprint(jwk: Mapping[str, object]) -> str:
    """RFC 7638 JWK thumbprint with SHA-256, base64url without padding.

    Only the required members of the key type take part (§3.2), in lexicographic order,
    without whitespace (§3.3). Raises ValueError when a required member is missing or is
    not a string (`public_key` never gets here with such a key).
    """
    kty = jwk.get("kty")
    members = REQUIRED_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"unsupported kty {kty!r}")
    canonical: dict[str, str] = {}
    for name in members:
        value = jwk.get(name)
        if not isinstance(value, str):
            raise ValueError(f"member {name!r} is missing or not a string")
        canonical[name] = value
    text = json.dumps(canonical, separators=(",", ":"), ensure_ascii=False)
    return b64url_encode(hashlib.sha256(text.encode("utf-8")).digest())


# Owned by whoever parses the same keys again and again (a DPoP policy, an attestation
# policy) and handed in: no module-level cache.
KeyCache = BoundedCache[str, "PublicKeyInfo"]


def public_key(jwk: str | Mapping[str, object], *,
               cache: KeyCache | None = None) -> PublicKeyInfo | JwkError:
    """Turn a public JWK (JSON text or a parsed object) into a key, its thumbprint and type.

    Accepted keys are kept in `cache` (bounded, keyed by the JWK's JSON; None: no cache), so
    a key seen before costs one lookup. Refusals are not cached: they would only let garbage
    (or private key material) evict the keys of real clients. Never raises.
    """
    try:
        if isinstance(jwk, str):
            cache_key = jwk
        else:
            cache_key = json.dumps(dict(jwk), sort_keys=True, separators=(",", ":"),
                                   allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return JwkError("bad_jwk", "The key is not a JSON object.")
    cached = cache.get(cache_key) if cache is not None else None
    if cached is not None:
        return cached
    result = _parse(jwk)
    if cache is not None and isinstance(result, PublicKeyInfo) \
            and len(cache_key) <= MAX_JWK_JSON_LENGTH:
        cache.put(cache_key, result)
    return result


def _parse(jwk: str | Mapping[str, object]) -> PublicKeyInfo | JwkError:
    if isinstance(jwk, str):
        if len(jwk) > MAX_JWK_JSON_LENGTH:
            return JwkError("bad_jwk", "The key is too large.")
        try:
            parsed: object = json.loads(jwk)
        except (ValueError, RecursionError):
            return JwkError("bad_jwk", "The key is not valid JSON.")
        if not isinstance(parsed, dict):
            return JwkError("bad_jwk", "The key is not a JSON object.")
        members: Mapping[str, object] = parsed
    else:
        members = jwk
    kty = members.get("kty")
    if kty == "oct":
        return JwkError("symmetric_key", "A symmetric key cannot prove possession.")
    if any(name in members for name in PRIVATE_MEMBERS):
        return JwkError("private_key", "The key contains private key material.")
    if kty == "EC":
        return _ec(members)
    if kty == "OKP":
        return _okp(members)
    if kty == "RSA":
        return _rsa(members)
    if not isinstance(kty, str):
        return JwkError("bad_jwk", "The key has no kty.")
    return JwkError("unsupported_key", "The key type is not supported.")


def _member(jwk: Mapping[str, object], name: str) -> bytes | None:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        return None
    return b64url_decode(value)


def _ec(jwk: Mapping[str, object]) -> PublicKeyInfo | JwkError:
    crv = jwk.get("crv")
    curve = _EC_CURVES.get(crv) if isinstance(crv, str) else None
    if curve is None or not isinstance(crv, str):
        return JwkError("unsupported_key", "The curve is not supported.")
    x, y = _member(jwk, "x"), _member(jwk, "y")
    # RFC 7518 §6.2.1.2/§6.2.1.3: each coordinate is the full size of a field element.
    if x is None or y is None or len(x) != curve[1] or len(y) != curve[1]:
        return JwkError("bad_jwk", "The EC key coordinates are malformed.")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(curve[0], b"\x04" + x + y)
    except ValueError:
        return JwkError("bad_jwk", "The EC key is not a point on its curve.")
    return PublicKeyInfo(key, "EC", crv, thumbprint(jwk), curve[0].key_size)


def _okp(jwk: Mapping[str, object]) -> PublicKeyInfo | JwkError:
    if jwk.get("crv") != "Ed25519":
        return JwkError("unsupported_key", "The curve is not supported.")
    x = _member(jwk, "x")
    if x is None or len(x) != 32:
        return JwkError("bad_jwk", "The Ed25519 key is malformed.")
    try:
        key = Ed25519PublicKey.from_public_bytes(x)
    except ValueError:
        return JwkError("bad_jwk", "The Ed25519 key is malformed.")
    return PublicKeyInfo(key, "OKP", "Ed25519", thumbprint(jwk), 256)


def _rsa(jwk: Mapping[str, object]) -> PublicKeyInfo | JwkError:
    n_bytes, e_bytes = _member(jwk, "n"), _member(jwk, "e")
    # RFC 7518 §6.3.1.1/§6.3.1.2: the minimum number of octets, so no leading zero.
    if n_bytes is None or e_bytes is None or n_bytes[0] == 0 or e_bytes[0] == 0:
        return JwkError("bad_jwk", "The RSA key is malformed.")
    n = int.from_bytes(n_bytes, "big")
    e = int.from_bytes(e_bytes, "big")
    bits = n.bit_length()
    if bits < RSA_MIN_BITS:
        return JwkError("unsupported_key", "The RSA key is shorter than 2048 bits.")
    if bits > RSA_MAX_BITS:
        return JwkError("unsupported_key", "The RSA key is longer than 8192 bits.")
    if e < 3 or e % 2 == 0 or n % 2 == 0 or e.bit_length() > RSA_MAX_EXPONENT_BITS:
        return JwkError("bad_jwk", "The RSA key is malformed.")
    try:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        return JwkError("bad_jwk", "The RSA key is malformed.")
    return PublicKeyInfo(key, "RSA", "", thumbprint(jwk), bits)
