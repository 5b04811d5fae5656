"""The JOSE header of a proof and its signature (RFC 9449 §4.3 steps 2, 4-7)."""

from __future__ import annotations

from sidecar.core.dpop import errors as e
from sidecar.core.dpop.policy import MAX_PROOF_LENGTH, TYP, DpopPolicy
from sidecar.core.jose.algorithms import ALGORITHMS, EmbeddedKeyHeader
from sidecar.core.jose.compact import b64url_decode, split_compact, strict_json_object
from sidecar.core.jose.keys import JwkError, KeyCache, public_key
from sidecar.core.syntax import clip
from sidecar.errors import OAuthError


def parse_header(encoded: str, keys: KeyCache) -> EmbeddedKeyHeader | OAuthError:
    header = strict_json_object(encoded)
    if header is None:
        return e.BAD_HEADER
    if header.get("typ") != TYP:  # §4.2, §4.3 step 4, §11.5: explicit typing
        return e.BAD_TYP.with_detail(f"typ={clip(header.get('typ'))}")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
        return e.CRIT
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        return e.BAD_ALG.with_detail(f"alg={clip(alg)}")  # §4.3 step 5: none, HS*, unknown
    algorithm = ALGORITHMS[alg]
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):  # §4.2: jwk is REQUIRED and is a JWK object
        return e.NO_JWK
    key = public_key(jwk, cache=keys)
    if isinstance(key, JwkError):  # §4.3 step 7: no private key; symmetric keys neither
        return e.invalid(key.reason, key.message)
    # The key must be of the type and curve the algorithm is defined for (RFC 7518 §3.1),
    # and agree with the key's own `alg` when it has one (RFC 7517 §4.4).
    if key.kty != algorithm.kty or key.crv != algorithm.crv:
        return e.ALG_KEY.with_detail(f"alg={alg} kty={key.kty} crv={key.crv}")
    if "alg" in jwk and jwk["alg"] != alg:
        return e.ALG_KEY.with_detail(f"alg={alg} jwk.alg={clip(jwk['alg'])}")
    return EmbeddedKeyHeader(alg, algorithm, key)


def signed_header(proof: str, policy: DpopPolicy) -> tuple[EmbeddedKeyHeader, str] | OAuthError:
    """§4.3 steps 2, 4-7: the checked header of a proof whose signature verifies with its
    own `jwk`, and the still-encoded payload."""
    if len(proof) > MAX_PROOF_LENGTH:
        return e.TOO_LARGE
    segments = split_compact(proof, max_length=MAX_PROOF_LENGTH)
    if segments is None:
        return e.NOT_JWS
    encoded_header, encoded_payload, encoded_signature = segments
    header = policy.headers.get(encoded_header)  # parsed once per distinct header
    if header is None:
        parsed = parse_header(encoded_header, policy.keys)
        if isinstance(parsed, OAuthError):
            return parsed
        header = parsed
    if header.alg not in policy.algorithms:  # §4.3 step 5: "acceptable per local policy"
        return e.BAD_ALG.with_detail(f"alg={header.alg} not in dpop.algorithms")
    # §4.3 step 6: the signature verifies with the key in the jwk header.
    signature = b64url_decode(encoded_signature)
    if signature is None:
        return e.NOT_JWS
    if not policy.headers.verify(header, encoded_header, encoded_payload, signature):
        return e.BAD_SIGNATURE
    return header, encoded_payload
