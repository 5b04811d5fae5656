"""Helpers for the resource-side tests: proofs as a client signs them for an API call
(with `ath`), proofs signed with any header or claims a test needs, and tokens bound in the
store as the token side records them."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from multidict import CIMultiDict

from sidecar.core.access_binding import ACCESS_BINDING, AccessBinding
from sidecar.ports import ReplayStore
from tests.support.dpop import DpopKey

API_ORIGIN = "https://api.example.com"
API_PATH = "/api/things"
API_URL = API_ORIGIN + API_PATH


@dataclass
class Answer:
    """What a client sees of an API call's answer: the status and the headers."""

    status: int
    headers: CIMultiDict[str]

    def challenge(self, scheme: str) -> str:
        """The `WWW-Authenticate` challenge of `scheme` (it must be there)."""
        found = [v for v in self.headers.getall("WWW-Authenticate", ())
                 if v.split(" ", 1)[0] == scheme]
        assert found, f"no {scheme} challenge in {self.headers.getall('WWW-Authenticate', ())}"
        return found[0]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(token: str) -> str:
    """RFC 9449 §4.2, computed here from the standard library only."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def resource_settings(upstream_url: str, **overrides: Any) -> dict[str, Any]:
    return {"enabled": True, "public_origin": API_ORIGIN, "prefixes": ["/api/"],
            "upstream_url": upstream_url, **overrides}


def claims_for(token: str, *, htu: str = API_URL, htm: str = "GET",
               **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu,
                              "iat": int(time.time()), "ath": ath(token)}
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


def api_proof(key: DpopKey, token: str, **claims: Any) -> str:
    """A proof as a client makes it for `GET API_URL` with `token` (override any claim;
    None removes it)."""
    return sign(key, claims_for(token, **claims))


def sign(key: DpopKey, claims: dict[str, Any], header: dict[str, Any] | None = None,
         *, alg: str = "ES256") -> str:
    """ES256 over any header and claims (`header` None: a proper DPoP header)."""
    protected = {"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk} if header is None \
        else header
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (protected, claims))
    der = key.private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


async def bind(store: ReplayStore, token: str, *, jkt: str | None = None,
               x5t_s256: str | None = None, client_id: str = "app", scope: str = "read",
               exp: int | None = None) -> None:
    """Record `token` as bound, as the token side does when it sees it issued."""
    binding = AccessBinding(jkt=jkt, x5t_s256=x5t_s256, client_id=client_id, scope=scope,
                            exp=int(time.time()) + 3600 if exp is None else exp)
    await store.set_binding(ACCESS_BINDING, token, binding.encode(), 3600)
