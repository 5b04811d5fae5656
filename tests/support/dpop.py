"""A DPoP client key for tests: signs proofs the way a real client does (pyjwt)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sidecar.core.jwk import thumbprint


@dataclass
class DpopKey:
    private: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> dict[str, Any]:
        return json.loads(ECAlgorithm.to_jwk(self.private.public_key()))  # type: ignore[no-any-return]

    @property
    def jkt(self) -> str:
        return thumbprint(self.public_jwk)

    def proof(self, htu: str, htm: str = "POST", *, jti: str | None = None,
              iat: float | None = None, nonce: str | None = None, **extra: Any) -> str:
        claims: dict[str, Any] = {"jti": jti or uuid.uuid4().hex, "htm": htm, "htu": htu,
                                  "iat": int(time.time() if iat is None else iat), **extra}
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.private, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": self.public_jwk})
