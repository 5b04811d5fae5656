"""DPoP client keys for tests: they sign proofs the way real clients do (pyjwt; oauth4webapi)."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm

from sidecar.core.jose.keys import thumbprint


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


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Ed25519DpopKey:
    """An Ed25519 DPoP key signing as oauth4webapi does (WebCrypto): header `alg`, `typ`,
    `jwk` = {kty, crv, x}; claims `iat`, `jti` (32 random bytes, base64url), `htm`, `htu`,
    and `nonce` when the server sent one. `alg` is "Ed25519" (RFC 9864), as oauth4webapi
    sends it, or the older "EdDSA" (RFC 8037)."""

    alg: str = "Ed25519"
    private: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)

    @property
    def public_jwk(self) -> dict[str, Any]:
        return {"kty": "OKP", "crv": "Ed25519",
                "x": _b64url(self.private.public_key().public_bytes_raw())}

    @property
    def jkt(self) -> str:
        return thumbprint(self.public_jwk)

    def proof(self, htu: str, htm: str = "POST", *, nonce: str | None = None) -> str:
        header = {"alg": self.alg, "typ": "dpop+jwt", "jwk": self.public_jwk}
        claims: dict[str, Any] = {"iat": int(time.time()), "jti": _b64url(os.urandom(32)),
                                  "htm": htm, "htu": htu}
        if nonce is not None:
            claims["nonce"] = nonce
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, claims))
        signature = self.private.sign(signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"
