"""Pre-signed DPoP proofs (ES256) for the load generator, one per request.

A proof's `jti` is single-use and its `iat` must be recent, so proofs are signed right before
each run, in parallel, with the `cryptography` primitives (no PyJWT): the JOSE header of each
key is encoded once, and a proof costs one small JSON dump, one base64 and one ECDSA sign.
Proofs rotate over `keys` client keys, as many clients would (the sidecar caches parsed
headers per key, so this is its steady state).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

_ECDSA = ec.ECDSA(hashes.SHA256())
_CHUNK = 5000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_keys(count: int) -> list[int]:
    """Private P-256 scalars (ints travel to worker processes; key objects do not pickle)."""
    return [ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
            for _ in range(count)]


def _encoded_header(key: ec.EllipticCurvePrivateKey) -> str:
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
           "y": b64url(numbers.y.to_bytes(32, "big"))}
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
    return b64url(json.dumps(header, separators=(",", ":")).encode())


def _sign_range(scalars: Sequence[int], htu: str, *, tag: str, start: int, count: int,
                iat: int) -> list[str]:
    keys = [ec.derive_private_key(s, ec.SECP256R1()) for s in scalars]
    headers = [_encoded_header(k) for k in keys]
    proofs = []
    for i in range(start, start + count):
        k = i % len(keys)
        claims = {"jti": f"{tag}{i:012x}", "htm": "POST", "htu": htu, "iat": iat}
        signing_input = f"{headers[k]}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        r, s = decode_dss_signature(keys[k].sign(signing_input.encode("ascii"), _ECDSA))
        proofs.append(f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}")
    return proofs


def sign_proofs(scalars: Sequence[int], htu: str, count: int,
                workers: int | None = None) -> list[str]:
    """`count` proofs for `POST htu`, each with its own `jti`, `iat` = now."""
    tag = secrets.token_hex(10)  # jti: 20 random hex + 12 hex counter, unique across runs
    iat = int(time.time())
    ranges = [(start, min(_CHUNK, count - start)) for start in range(0, count, _CHUNK)]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(ranges) == 1:
        return [p for start, n in ranges
                for p in _sign_range(scalars, htu, tag=tag, start=start, count=n, iat=iat)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_sign_range, list(scalars), htu, tag=tag, start=start, count=n,
                               iat=iat)
                   for start, n in ranges]
        return [p for future in futures for p in future.result()]


def write_proof_files(proofs: Sequence[str], prefix: Path, parts: int) -> list[Path]:
    """Deal the proofs into `parts` files `<prefix>.<i>` (one per load-generator thread), one
    proof a line, so no two threads ever send the same proof."""
    paths = [prefix.with_name(f"{prefix.name}.{i}") for i in range(parts)]
    for i, path in enumerate(paths):
        path.write_text("\n".join(proofs[i::parts]) + "\n", encoding="ascii")
    return paths
