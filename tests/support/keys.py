"""Signing keys and their public JWKs, for the key-set and JWKS-source tests."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, **extra: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, **extra}
