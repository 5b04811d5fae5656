"""A world for the attestation tests: real attester keys (EC P-256, Ed25519, a jwks_uri
attester), real client instance keys, JWTs signed with pyjwt, DPoP proofs checked by the real
`validate_proof`, the real MemoryStore for the PoP `jti`, and a fake clock."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.adapters.memory import MemoryStore
from sidecar.core.attestation.config import (
    ATTEST_JWT_CLIENT_AUTH,
    AttestationPolicy,
)
from sidecar.core.attestation.results import AttestedClient
from sidecar.core.attestation.verification import verify_attestation
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.jose.keys import thumbprint
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError
from sidecar.settings import AttestationSettings, DpopSettings
from tests.support.fakes import FakeClock, ScriptedFetcher

AS_ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"
ATTESTER = "https://attester.example.com"
ED_ATTESTER = "https://ed-attester.example.com"
REMOTE_ATTESTER = "https://remote-attester.example.com"
REMOTE_URI = "https://remote-attester.example.com/jwks"
NOW = float(int(time.time()))
SECRET = "an-attestation-challenge-secret-0123456789"
OTHER_SECRET = "another-attestation-challenge-secret-987654"


PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def public_jwk(key: PrivateKey, **extra: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, **extra}


def alg_of(key: PrivateKey) -> str:
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "EdDSA"


def sign(claims: dict[str, Any], key: Any, alg: str, headers: dict[str, Any]) -> str:
    headers = {k: v for k, v in headers.items() if v is not None or k == "typ"}
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, key, algorithm=alg,
                      headers=headers)


@dataclass
class Instance:
    """A client instance: its key, attested by an attester."""

    key: PrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key)

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def pop(self, *, alg: str | None = None, typ: str | None = "oauth-client-attestation-pop+jwt",
            key: Any = None, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        base: dict[str, Any] = {"aud": AS_ISSUER, "jti": uuid.uuid4().hex, "iat": int(NOW)}
        base.update(claims)
        return sign(base, key or self.key, alg or alg_of(self.key), {"typ": typ, **(headers or {})})

    def dpop(self, *, nonce: str | None = None, **claims: Any) -> str:
        base: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": "POST", "htu": ENDPOINT,
                                "iat": int(NOW), "nonce": nonce, **claims}
        return sign(base, self.key, alg_of(self.key), {"typ": "dpop+jwt", "jwk": self.jwk})


class World:
    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.tmp_path = tmp_path
        self.attester_key = ec.generate_private_key(ec.SECP256R1())
        self.ed_attester_key = ed25519.Ed25519PrivateKey.generate()
        self.remote_key = ec.generate_private_key(ec.SECP256R1())
        self.clock = FakeClock(NOW)
        self.store = MemoryStore(1000, "t:", self.clock)
        self.fetcher = ScriptedFetcher()
        self.fetcher.documents[REMOTE_URI] = {"keys": [public_jwk(self.remote_key, kid="r1")]}
        self.jwks = CachingJwksSource(self.fetcher, self.clock)
        (tmp_path / "ed.jwks.json").write_text(
            json.dumps({"keys": [public_jwk(self.ed_attester_key, kid="e1")]}))
        (tmp_path / "challenge-secret").write_text(SECRET + "\n")
        self.dpop_nonces = WindowedHmac((SECRET,), 60, 2, purpose="dpop-nonce")
        self.dpop_policy = DpopPolicy.from_settings(DpopSettings(), ENDPOINT)
        self.policy = self.build(**config)

    def attesters(self) -> tuple[dict[str, Any], ...]:
        return (
            {"issuer": ATTESTER, "clients": ["wallet-app", "other-app"],
             "jwks": {"keys": [public_jwk(self.attester_key, kid="a1")]}},
            {"issuer": ED_ATTESTER, "clients": ["wallet-app", "ed-app"],
             "jwks_file": "ed.jwks.json", "algorithms": ["EdDSA"]},
            {"issuer": REMOTE_ATTESTER, "clients": ["remote-app"], "jwks_uri": REMOTE_URI},
        )

    def build(self, **config: Any) -> AttestationPolicy:
        values: dict[str, Any] = {"enabled": True, "challenge_secret_file": "challenge-secret",
                                  "attesters": self.attesters(), **config}
        return AttestationPolicy.from_settings(AttestationSettings(**values), issuer=AS_ISSUER,
                                               base_dir=self.tmp_path, files=LOCAL_FILES)

    def attestation(self, instance: Instance, *, key: Any = None, kid: str | None = "a1",
                    alg: str | None = None, typ: str | None = "oauth-client-attestation+jwt",
                    headers: dict[str, Any] | None = None, cnf: Any = "instance",
                    **claims: Any) -> str:
        key = key or self.attester_key
        base: dict[str, Any] = {"sub": "wallet-app", "iat": int(NOW), "exp": int(NOW) + 3600,
                                "cnf": {"jwk": instance.jwk} if cnf == "instance" else cnf}
        base.update(claims)
        return sign(base, key, alg or alg_of(key), {"typ": typ, "kid": kid, **(headers or {})})

    async def verify(self, attestation: tuple[str, ...], pop: tuple[str, ...] = (), *,
                     dpop: DpopProof | None = None, client_id: str | None = None,
                     policy: AttestationPolicy | None = None, legacy: bool = False,
                     dpop_nonces: WindowedHmac | None = None,
                     dpop_nonce_required: bool = False) -> AttestedClient | OAuthError | None:
        return await verify_attestation(
            attestation, pop, dpop_proof=dpop, body_client_id=client_id,
            policy=policy or self.policy, now=self.clock.now(), jwks=self.jwks,
            dpop_nonces=dpop_nonces, dpop_nonce_required=dpop_nonce_required, legacy=legacy)

    async def ok(self, attestation: str, pop: str | None = None,
                 **kwargs: Any) -> AttestedClient:
        result = await self.verify((attestation,), (pop,) if pop else (), **kwargs)
        assert isinstance(result, AttestedClient), result
        return result

    async def refused(self, attestation: tuple[str, ...] | str, pop: tuple[str, ...] | str = (),
                      *, code: str, reason: str, status: int = 400, **kwargs: Any) -> OAuthError:
        attestations = (attestation,) if isinstance(attestation, str) else attestation
        pops = (pop,) if isinstance(pop, str) else pop
        result = await self.verify(attestations, pops, **kwargs)
        assert isinstance(result, OAuthError), result
        assert (result.code, result.result_code, result.status) == \
            (code, f"attestation.{reason}", status), result
        for token in (*attestations, *pops):  # nothing of a token in what the client sees
            for part in token.split("."):
                assert len(part) < 8 or part not in result.description + result.detail
        return result

    def proof(self, instance: Instance, nonce: str | None = None) -> DpopProof:
        proof = validate_proof((instance.dpop(nonce=nonce),), method="POST",
                               policy=self.dpop_policy, now=self.clock.now(), nonces=None,
                               nonce_required=False)
        assert isinstance(proof, DpopProof), proof
        return proof


INVALID = "invalid_client_attestation"


def attested(mode: str = ATTEST_JWT_CLIENT_AUTH, client_id: str = "wallet-app") -> AttestedClient:
    return AttestedClient(client_id, ATTESTER, "jkt", mode)  # type: ignore[arg-type]
