"""Micro-benchmark of DPoP proof validation (ES256): the sidecar's validate_proof against a
PyJWT baseline. Not a test; run it to see why validate_proof verifies with `cryptography`
directly and caches parsed headers.

    .venv/bin/python bench/dpop_micro.py [iterations]

Rows (per call, best of 5 runs):
- validate_proof, warm: the steady state (header/key cache hit; the same client's next proof).
- validate_proof, cold: both caches cleared before every call (a key never seen before).
- pyjwt naive: get_unverified_header + PyJWK(jwk) + jwt.decode, what a first version does.
- pyjwt, key parsed once: jwt.decode with a pre-built key (the best PyJWT can do).
- cryptography ECDSA verify only: the floor (the signature check every path pays).
"""

from __future__ import annotations

import base64
import json
import sys
import timeit
from collections.abc import Callable

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.settings import DpopSettings

ENDPOINT = "https://as.example.com/token"
NOW = 1_700_000_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x.to_bytes(32, "big")),
           "y": b64(numbers.y.to_bytes(32, "big"))}
    claims = {"jti": "bench-jti-0001", "htm": "POST", "htu": ENDPOINT, "iat": NOW}
    token = jwt.encode(claims, private, algorithm="ES256",
                       headers={"typ": "dpop+jwt", "jwk": jwk})
    policy = DpopPolicy.from_settings(DpopSettings(), ENDPOINT)
    values = (token,)

    def ours() -> object:
        return validate_proof(values, method="POST", policy=policy, now=NOW, nonces=None,
                              nonce_required=False)

    def ours_cold() -> object:
        policy.headers.clear()
        policy.keys.clear()
        return ours()

    def pyjwt_naive() -> object:
        header = jwt.get_unverified_header(token)
        key = jwt.PyJWK(header["jwk"], algorithm=header["alg"])
        return jwt.decode(token, key, algorithms=["ES256"],
                          options={"require": ["jti", "htm", "htu", "iat"]})

    prebuilt = jwt.PyJWK(jwk, algorithm="ES256")

    def pyjwt_prebuilt_key() -> object:
        return jwt.decode(token, prebuilt, algorithms=["ES256"],
                          options={"require": ["jti", "htm", "htu", "iat"]})

    head, body, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = private.public_key()
    data = f"{head}.{body}".encode()
    ecdsa = ec.ECDSA(hashes.SHA256())

    def verify_only() -> object:
        public.verify(der, data, ecdsa)
        return None

    result = ours()
    assert isinstance(result, DpopProof), result
    assert pyjwt_naive()["jti"] == claims["jti"]  # type: ignore[index]

    rows: list[tuple[str, Callable[[], object]]] = [
        ("validate_proof, warm cache", ours),
        ("validate_proof, cold cache", ours_cold),
        ("pyjwt naive (PyJWK per call + decode)", pyjwt_naive),
        ("pyjwt decode, key parsed once", pyjwt_prebuilt_key),
        ("cryptography ECDSA verify only", verify_only),
    ]
    print(f"ES256 DPoP proof, {len(token)} bytes, {iterations} iterations, best of 5 runs")
    baseline = None
    for name, function in rows:
        function()  # warm up
        best = min(timeit.repeat(function, number=iterations, repeat=5)) / iterations * 1e6
        baseline = baseline if baseline is not None else best
        print(f"  {name:<40} {best:8.1f} us/call   x{best / baseline:4.2f}")
    print(json.dumps({"python": sys.version.split()[0]}))


if __name__ == "__main__":
    main()
