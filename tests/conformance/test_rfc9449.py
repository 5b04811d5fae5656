"""RFC 9449 conformance of `validate_proof`: the RFC's own examples as vectors, every refusal
of §4.3 (errors per §5 and §8), and the proofs that must be accepted (FAPI 2.0 / OIDF
conformance-suite expectations: `htu` with query and fragment, case and default port, `iat`
+8 s and -10 s, extra claims and header parameters, `exp`/`nbf` present).

Proofs are signed here with `cryptography` directly (so that malformed variants can be built)
and, for interoperability, with PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.htu import normalize_htu_targets
from sidecar.core.jose import keys as jose_keys
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError
from sidecar.settings import DpopSettings

NOW = 1_700_000_000.0
ENDPOINT = "https://as.example.com/token"
ALIAS = "https://alias.example.net"  # an alias with an empty path
SECRET = "s" * 40
OLD_SECRET = "o" * 40
NQCHAR = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")  # RFC 9449 §8.1

POLICY = DpopPolicy.from_settings(
    DpopSettings(algorithms=("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256"),
                 htu_aliases=(ALIAS,)),
    ENDPOINT,
)
# ES256 EdDSA Ed25519 PS256 RS256
DEFAULT_POLICY = DpopPolicy.from_settings(DpopSettings(), ENDPOINT)
NONCES = WindowedHmac((SECRET, OLD_SECRET), 60, 2, "dpop-nonce")


# ---------------------------------------------------------------------------------------
# Building proofs.


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64json(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def _int_b64(value: int, size: int | None = None) -> str:
    size = size if size is not None else (value.bit_length() + 7) // 8
    return b64(value.to_bytes(size, "big"))


@dataclass(frozen=True)
class Key:
    private: Any
    jwk: dict[str, str]
    alg: str


def ec_key(curve: ec.EllipticCurve, crv: str, size: int, alg: str) -> Key:
    private = ec.generate_private_key(curve)
    numbers = private.public_key().public_numbers()
    return Key(private, {"kty": "EC", "crv": crv, "x": _int_b64(numbers.x, size),
                         "y": _int_b64(numbers.y, size)}, alg)


def rsa_key(bits: int, alg: str) -> Key:
    private = rsa.generate_private_key(65537, bits)
    numbers = private.public_key().public_numbers()
    return Key(private, {"kty": "RSA", "e": _int_b64(numbers.e), "n": _int_b64(numbers.n)}, alg)


def ed25519_key() -> Key:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes_raw()
    return Key(private, {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}, "EdDSA")


ES256 = ec_key(ec.SECP256R1(), "P-256", 32, "ES256")
ES384 = ec_key(ec.SECP384R1(), "P-384", 48, "ES384")
ES512 = ec_key(ec.SECP521R1(), "P-521", 66, "ES512")
EDDSA = ed25519_key()
RSA = rsa_key(2048, "RS256")
PS256 = replace(RSA, alg="PS256")
OTHER_ES256 = ec_key(ec.SECP256R1(), "P-256", 32, "ES256")
HASHES = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}


def raw_sign(key: Key, alg: str, data: bytes) -> bytes:
    private = key.private
    if alg.startswith("ES"):
        size = {"ES256": 32, "ES384": 48, "ES512": 66}[alg]
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(HASHES[alg[2:]])))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if alg in ("EdDSA", "Ed25519"):
        return bytes(private.sign(data))
    if alg.startswith("RS"):
        return bytes(private.sign(data, padding.PKCS1v15(), HASHES[alg[2:]]))
    if alg.startswith("PS"):
        digest = HASHES[alg[2:]]
        return bytes(private.sign(data, padding.PSS(padding.MGF1(digest), digest.digest_size),
                                  digest))
    raise AssertionError(alg)


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"jti": "jti-0001", "htm": "POST", "htu": ENDPOINT, "iat": int(NOW)}
    for name, value in overrides.items():
        if value is DROP:
            base.pop(name, None)
        else:
            base[name] = value
    return base


DROP = object()


def proof(
    key: Key = ES256,
    *,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | None = None,
    raw_header: str | None = None,
    raw_payload: str | None = None,
    signer: Key | None = None,
    signature: Callable[[bytes], bytes] | None = None,
    **claim_overrides: Any,
) -> str:
    """A compact DPoP proof; every part can be replaced to build a refusal."""
    alg = alg or key.alg
    head: dict[str, Any] = {"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk}
    for name, value in (header or {}).items():
        if value is DROP:
            head.pop(name, None)
        else:
            head[name] = value
    encoded_header = raw_header if raw_header is not None else b64json(head)
    body = payload if payload is not None else claims(**claim_overrides)
    encoded_payload = raw_payload if raw_payload is not None else b64json(body)
    signing_input = f"{encoded_header}.{encoded_payload}".encode()
    if signature is not None:
        sig = signature(signing_input)
    else:
        sign_key = signer or key
        sig = raw_sign(sign_key, alg if signer is None else sign_key.alg, signing_input)
    return f"{encoded_header}.{encoded_payload}.{b64(sig)}"


def pyjwt_proof(key: Key, **claim_overrides: Any) -> str:
    return jwt.encode(claims(**claim_overrides), key.private, algorithm=key.alg,
                      headers={"typ": "dpop+jwt", "jwk": key.jwk})


# ---------------------------------------------------------------------------------------
# The RFC's own examples (RFC 9449 §4.1, §5, §7.1).

RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # §6.1
RFC_JWK = {"kty": "EC", "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
           "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA", "crv": "P-256"}
RFC_HEADER = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19"
)
RFC_TOKEN_PROOF = (  # §4.1 / §5, iat 1562262616
    RFC_HEADER + ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2Vy"
    "dmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiML"
    "vqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_REFRESH_PROOF = (  # §5, same jti, iat 1562265296
    RFC_HEADER + ".eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2Vy"
    "dmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjY1Mjk2fQ.pAqut2IRDm_De6PR93SYmGBPXpwrAk90e8cP"
    "2hjiaG5QsGSuKDYW7_X620BxqhvYC8ynrrvZLTk41mSRroapUA"
)
RFC_RESOURCE_PROOF = (  # §7.1, GET, with ath, iat 1562262618
    RFC_HEADER + ".eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNv"
    "dXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8yc"
    "jJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA"
    "1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA"
)
RFC_TOKEN_IAT = 1562262616
RFC_REFRESH_IAT = 1562265296
RFC_POLICY = DpopPolicy.from_settings(DpopSettings(), "https://server.example.com/token")
RFC_RESOURCE = normalize_htu_targets(["https://resource.example.org/protectedresource"])
RFC_NO_ATH = replace(RFC_POLICY, reject_ath=True)


def _tamper(token: str) -> str:
    head, body, sig = token.split(".")
    return f"{head}.{body}.{sig[:-2]}{'AA' if sig[-2:] != 'AA' else 'BA'}"


def _non_canonical(token: str) -> str:
    """The same signature bytes, spelled with non-zero unused bits in the last character."""
    head, body, sig = token.split(".")
    assert len(sig) % 4 == 2  # 64 bytes: the last character carries 2 bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    changed = sig[:-1] + alphabet[last | 1]
    assert base64.urlsafe_b64decode(changed + "==") == base64.urlsafe_b64decode(sig + "==")
    return f"{head}.{body}.{changed}"


# ---------------------------------------------------------------------------------------
# The table of cases.


@dataclass(frozen=True)
class Case:
    values: tuple[str, ...]
    expect: str  # "accept" or a result code
    method: str = "POST"
    now: float = NOW
    policy: DpopPolicy = POLICY
    nonces: WindowedHmac | None = None
    nonce_required: bool = False
    htu_targets: frozenset[str] | None = None
    jkt: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def one(token: str, expect: str, **kwargs: Any) -> Case:
    return Case((token,), expect, **kwargs)


def hs256(data: bytes) -> bytes:
    return hmac.new(b"k" * 32, data, hashlib.sha256).digest()


def der_signature(data: bytes) -> bytes:
    return bytes(ES256.private.sign(data, ec.ECDSA(hashes.SHA256())))


def nonce_at(seconds_ago: float, purpose: str = "dpop-nonce",
             secrets: tuple[str, ...] = (SECRET,)) -> str:
    return WindowedHmac(secrets, 60, 2, purpose).issue(NOW - seconds_ago)


def not_on_curve() -> dict[str, str]:
    x = ES256.jwk["x"]
    return {**ES256.jwk, "y": x}  # (x, x) is not a point of P-256 (for this random x)


SECP256K1 = ec.generate_private_key(ec.SECP256K1())
ED448_X = b64(ed448.Ed448PrivateKey.generate().public_key().public_bytes_raw())
RSA_1024 = rsa_key(1024, "RS256")
WITH_NONCE = {"nonces": NONCES, "nonce_required": True}

ACCEPT: dict[str, Case] = {
    # RFC 9449 examples, each with the clock at its own iat.
    "rfc-5-token-request": one(RFC_TOKEN_PROOF, "accept", now=RFC_TOKEN_IAT, policy=RFC_POLICY,
                               jkt=RFC_JKT),
    "rfc-5-refresh-request": one(RFC_REFRESH_PROOF, "accept", now=RFC_REFRESH_IAT,
                                 policy=RFC_POLICY, jkt=RFC_JKT),
    "rfc-7.1-resource-request-with-ath": one(RFC_RESOURCE_PROOF, "accept", method="GET",
                                             now=1562262618, policy=RFC_POLICY,
                                             htu_targets=RFC_RESOURCE, jkt=RFC_JKT),
    # Every algorithm, signed here.
    "es256": one(proof(ES256), "accept"),
    "es384": one(proof(ES384), "accept"),
    "es512": one(proof(ES512), "accept"),
    "eddsa": one(proof(EDDSA), "accept"),
    "ed25519-fully-specified": one(proof(EDDSA, alg="Ed25519"), "accept"),
    # RFC 9864: "Ed25519" is in the defaults, with the same OKP key EdDSA takes.
    "ed25519-default-policy": one(proof(EDDSA, alg="Ed25519"), "accept", policy=DEFAULT_POLICY),
    "eddsa-default-policy": one(proof(EDDSA), "accept", policy=DEFAULT_POLICY),
    "ps256": one(proof(PS256), "accept"),
    "rs256": one(proof(RSA), "accept"),
    # Signed with PyJWT (interoperability).
    "pyjwt-es256": one(pyjwt_proof(ES256), "accept"),
    "pyjwt-es384": one(pyjwt_proof(ES384), "accept"),
    "pyjwt-eddsa": one(pyjwt_proof(EDDSA), "accept"),
    "pyjwt-ps256": one(pyjwt_proof(PS256), "accept"),
    "pyjwt-rs256": one(pyjwt_proof(RSA), "accept"),
    # htu: §4.3 step 9 (query and fragment ignored) and RFC 3986 §6.2.2/§6.2.3.
    "htu-with-query": one(proof(htu=ENDPOINT + "?a=1&b=2"), "accept"),
    "htu-with-fragment": one(proof(htu=ENDPOINT + "#frag"), "accept"),
    "htu-with-query-and-fragment": one(proof(htu=ENDPOINT + "?x#y"), "accept"),
    "htu-upper-case-host": one(proof(htu="https://AS.Example.COM/token"), "accept"),
    "htu-upper-case-scheme": one(proof(htu="HTTPS://as.example.com/token"), "accept"),
    "htu-default-port-443": one(proof(htu="https://as.example.com:443/token"), "accept"),
    "htu-empty-port": one(proof(htu="https://as.example.com:/token"), "accept"),
    "htu-percent-encoded-unreserved": one(proof(htu="https://as.example.com/%74oken"),
                                          "accept"),
    "htu-dot-segments": one(proof(htu="https://as.example.com/a/../token"), "accept"),
    "htu-alias-empty-path": one(proof(htu="https://alias.example.net"), "accept"),
    "htu-alias-slash": one(proof(htu="https://ALIAS.example.net:443/?q"), "accept"),
    "htu-par-override": one(proof(htu="https://as.example.com/par"), "accept",
                            htu_targets=normalize_htu_targets(["https://as.example.com/par"])),
    # iat: the FAPI 2.0 cases and the window's edges.
    "iat-plus-8s": one(proof(iat=int(NOW) + 8), "accept"),
    "iat-minus-10s": one(proof(iat=int(NOW) - 10), "accept"),
    "iat-plus-10s-edge": one(proof(iat=int(NOW) + 10), "accept"),
    "iat-minus-60s-edge": one(proof(iat=int(NOW) - 60), "accept"),
    "iat-fractional": one(proof(iat=NOW - 0.5), "accept"),
    # Extra claims and header parameters are ignored; exp/nbf honoured when present.
    "extra-claims": one(proof(client_id="c", custom={"a": [1, 2]}, aud="x"), "accept"),
    "extra-header-parameters": one(proof(header={"kid": "k1", "x-custom": True}), "accept"),
    "jwk-with-kid-use-alg": one(proof(header={"jwk": {**ES256.jwk, "kid": "1", "use": "sig",
                                                      "alg": "ES256"}}), "accept"),
    "exp-and-nbf-present": one(proof(nbf=int(NOW), exp=int(NOW) + 300), "accept"),
    "exp-within-skew": one(proof(exp=int(NOW) - 5), "accept"),
    "ath-present-allowed": one(proof(ath="fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"),
                               "accept"),
    "jti-max-length": one(proof(jti="j" * 256), "accept"),
    "unicode-jti": one(proof(jti="é-ü-中"), "accept"),
    # Nonces (§8): the current one, an older one in the window, another replica's, the
    # previous secret's (rotation), and an optional nonce that is present and valid.
    "nonce-current": one(proof(nonce=nonce_at(0)), "accept", **WITH_NONCE),
    "nonce-two-steps-old": one(proof(nonce=nonce_at(120)), "accept", **WITH_NONCE),
    "nonce-previous-secret": one(proof(nonce=nonce_at(0, secrets=(OLD_SECRET,))), "accept",
                                 **WITH_NONCE),
    "nonce-optional-absent": one(proof(), "accept", nonces=NONCES),
    "nonce-optional-present": one(proof(nonce=nonce_at(30)), "accept", nonces=NONCES),
    "nonce-not-issued-by-us-ignored": one(proof(nonce="upstream-nonce"), "accept"),
}

REFUSE: dict[str, Case] = {
    # §4.3 steps 1 and 2.
    "two-dpop-headers": Case((proof(), proof(jti="other")), "dpop.multiple_headers"),
    "two-identical-headers": Case((proof(), proof()), "dpop.multiple_headers"),
    "empty-value": one("", "dpop.malformed"),
    "two-segments": one(".".join(proof().split(".")[:2]), "dpop.malformed"),
    "four-segments": one(proof() + ".AAAA", "dpop.malformed"),
    "empty-signature": one(proof().rsplit(".", 1)[0] + ".", "dpop.malformed"),
    "padded-base64": one(proof() + "==", "dpop.malformed"),
    "whitespace-inside": one(proof().replace(".", ". ", 1), "dpop.malformed"),
    "non-ascii": one(proof() + "é", "dpop.malformed"),
    "huge-value": one("A" * 20_000 + ".B.C", "dpop.malformed"),
    "bearer-prefix": one("DPoP " + proof(), "dpop.malformed"),
    "header-not-json": one(proof(raw_header=b64(b"not json")), "dpop.malformed"),
    "header-json-array": one(proof(raw_header=b64json(["typ"])), "dpop.malformed"),
    "header-bad-base64-length": one(proof(raw_header="A"), "dpop.malformed"),
    "payload-not-json": one(proof(raw_payload=b64(b"{")), "dpop.malformed"),
    "payload-json-string": one(proof(raw_payload=b64json("jti")), "dpop.malformed"),
    "payload-duplicate-claim": one(proof(raw_payload=b64(
        b'{"jti":"a","jti":"b","htm":"POST","htu":"' + ENDPOINT.encode()
        + b'","iat":1700000000}')), "dpop.malformed"),
    "payload-nan": one(proof(raw_payload=b64(
        b'{"jti":"a","htm":"POST","htu":"' + ENDPOINT.encode() + b'","iat":NaN}')),
        "dpop.malformed"),
    "payload-invalid-utf8": one(proof(raw_payload=b64(b'{"jti":"\xff"}')), "dpop.malformed"),
    # §4.3 step 4 (typ), RFC 7515 §4.1.11 (crit).
    "typ-missing": one(proof(header={"typ": DROP}), "dpop.bad_typ"),
    "typ-jwt": one(proof(header={"typ": "JWT"}), "dpop.bad_typ"),
    "typ-upper-case": one(proof(header={"typ": "DPOP+JWT"}), "dpop.bad_typ"),
    "typ-at-jwt": one(proof(header={"typ": "at+jwt"}), "dpop.bad_typ"),
    "typ-not-string": one(proof(header={"typ": 1}), "dpop.bad_typ"),
    "crit-present": one(proof(header={"crit": ["exp"], "exp": 1}), "dpop.unsupported_crit"),
    # §4.3 step 5 (alg), §11.6.
    "alg-none": one(proof(alg="none", signature=lambda _: b"\0"), "dpop.bad_alg"),
    "alg-missing": one(proof(header={"alg": DROP}, signature=lambda _: b"\0"), "dpop.bad_alg"),
    "alg-hs256": one(proof(alg="HS256", signature=hs256), "dpop.bad_alg"),
    "alg-hs256-oct-key": one(proof(alg="HS256", header={"jwk": {"kty": "oct", "k": "a2V5"}},
                                   signature=hs256), "dpop.bad_alg"),
    "alg-not-string": one(proof(header={"alg": True}, signature=lambda _: b"\0"),
                          "dpop.bad_alg"),
    "alg-lower-case": one(proof(alg="es256", signature=lambda _: b"\0"), "dpop.bad_alg"),
    "alg-not-in-policy": one(proof(ES384), "dpop.bad_alg", policy=DEFAULT_POLICY),
    "alg-es256-with-rsa-key": one(proof(RSA, alg="ES256", signature=lambda _: b"\0" * 64),
                                  "dpop.bad_alg"),
    "alg-es384-with-p256-key": one(proof(ES256, alg="ES384", signer=ES384), "dpop.bad_alg"),
    "alg-rs256-with-ec-key": one(proof(ES256, alg="RS256", signer=RSA), "dpop.bad_alg"),
    "alg-eddsa-with-ec-key": one(proof(ES256, alg="EdDSA", signer=EDDSA), "dpop.bad_alg"),
    "alg-ed25519-with-ec-key": one(proof(ES256, alg="Ed25519", signer=EDDSA), "dpop.bad_alg"),
    "alg-ed25519-with-rsa-key": one(proof(RSA, alg="Ed25519", signer=EDDSA), "dpop.bad_alg"),
    "jwk-alg-disagrees": one(proof(header={"jwk": {**ES256.jwk, "alg": "ES384"}}),
                             "dpop.bad_alg"),
    # §4.3 step 7 (jwk public, no symmetric key) and the key's own validity.
    "jwk-missing": one(proof(header={"jwk": DROP}), "dpop.bad_jwk"),
    "jwk-as-string": one(proof(header={"jwk": json.dumps(ES256.jwk)}), "dpop.bad_jwk"),
    "jwk-private-ec": one(proof(header={"jwk": {**ES256.jwk, "d": _int_b64(
        ES256.private.private_numbers().private_value, 32)}}), "dpop.private_key"),
    "jwk-private-rsa-member": one(proof(RSA, header={"jwk": {**RSA.jwk, "p": "AQAB"}}),
                                  "dpop.private_key"),
    "jwk-private-okp": one(proof(EDDSA, header={"jwk": {**EDDSA.jwk, "d": EDDSA.jwk["x"]}}),
                           "dpop.private_key"),
    "jwk-symmetric": one(proof(header={"jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
                         "dpop.symmetric_key"),
    "jwk-unknown-kty": one(proof(header={"jwk": {"kty": "XYZ"}}), "dpop.unsupported_key"),
    "jwk-no-kty": one(proof(header={"jwk": {"x": "AA"}}), "dpop.bad_jwk"),
    "jwk-secp256k1": one(proof(header={"jwk": {
        "kty": "EC", "crv": "secp256k1",
        "x": _int_b64(SECP256K1.public_key().public_numbers().x, 32),
        "y": _int_b64(SECP256K1.public_key().public_numbers().y, 32)}}),
        "dpop.unsupported_key"),
    "jwk-ed448": one(proof(EDDSA, header={"jwk": {"kty": "OKP", "crv": "Ed448", "x": ED448_X}}),
                     "dpop.unsupported_key"),
    "jwk-point-not-on-curve": one(proof(header={"jwk": not_on_curve()}), "dpop.bad_jwk"),
    "jwk-short-coordinate": one(proof(header={"jwk": {**ES256.jwk, "x": "AAAA"}}),
                                "dpop.bad_jwk"),
    "jwk-coordinate-not-string": one(proof(header={"jwk": {**ES256.jwk, "x": 5}}),
                                     "dpop.bad_jwk"),
    "jwk-rsa-1024": one(proof(RSA_1024), "dpop.unsupported_key"),
    # §4.3 step 6 (signature).
    "signature-other-key": one(proof(signer=OTHER_ES256), "dpop.bad_signature"),
    "signature-tampered": one(_tamper(proof()), "dpop.bad_signature"),
    "signature-der-encoded": one(proof(signature=der_signature), "dpop.bad_signature"),
    "signature-non-canonical-base64": one(_non_canonical(proof()), "dpop.malformed"),
    "signature-truncated": one(proof(signature=lambda d: raw_sign(ES256, "ES256", d)[:63]),
                               "dpop.bad_signature"),
    "payload-swapped": one(".".join([proof().split(".")[0], proof(jti="x").split(".")[1],
                                     proof().split(".")[2]]), "dpop.bad_signature"),
    "rs256-signature-as-ps256": one(proof(PS256, signature=lambda d: raw_sign(RSA, "RS256", d)),
                                    "dpop.bad_signature"),
    "rfc-proof-tampered": one(_tamper(RFC_TOKEN_PROOF), "dpop.bad_signature",
                              now=RFC_TOKEN_IAT, policy=RFC_POLICY),
    # §4.3 step 3 (required claims) and §11.1 (jti).
    "claim-jti-missing": one(proof(jti=DROP), "dpop.missing_claim"),
    "claim-htm-missing": one(proof(htm=DROP), "dpop.missing_claim"),
    "claim-htu-missing": one(proof(htu=DROP), "dpop.missing_claim"),
    "claim-iat-missing": one(proof(iat=DROP), "dpop.missing_claim"),
    "jti-empty": one(proof(jti=""), "dpop.bad_jti"),
    "jti-too-long": one(proof(jti="j" * 257), "dpop.bad_jti"),
    "jti-number": one(proof(jti=12345), "dpop.bad_jti"),
    # §4.3 step 8 (htm).
    "htm-get": one(proof(htm="GET"), "dpop.htm_mismatch"),
    "htm-lower-case": one(proof(htm="post"), "dpop.htm_mismatch"),
    "htm-not-string": one(proof(htm=["POST"]), "dpop.htm_mismatch"),
    "rfc-proof-wrong-method": one(RFC_TOKEN_PROOF, "dpop.htm_mismatch", method="PUT",
                                  now=RFC_TOKEN_IAT, policy=RFC_POLICY),
    # §4.3 step 9 (htu).
    "htu-other-host": one(proof(htu="https://evil.example.com/token"), "dpop.htu_mismatch"),
    "htu-other-path": one(proof(htu="https://as.example.com/token2"), "dpop.htu_mismatch"),
    "htu-trailing-slash": one(proof(htu=ENDPOINT + "/"), "dpop.htu_mismatch"),
    "htu-path-case": one(proof(htu="https://as.example.com/TOKEN"), "dpop.htu_mismatch"),
    "htu-http-scheme": one(proof(htu="http://as.example.com/token"), "dpop.htu_mismatch"),
    "htu-other-port": one(proof(htu="https://as.example.com:8443/token"), "dpop.htu_mismatch"),
    "htu-userinfo": one(proof(htu="https://user@as.example.com/token"), "dpop.htu_mismatch"),
    "htu-relative": one(proof(htu="/token"), "dpop.htu_mismatch"),
    "htu-not-string": one(proof(htu={"url": ENDPOINT}), "dpop.htu_mismatch"),
    "htu-newline-smuggled": one(proof(htu="https://as.example.com/to\nken"),
                                "dpop.htu_mismatch"),
    "htu-token-at-par": one(proof(), "dpop.htu_mismatch",
                            htu_targets=normalize_htu_targets(["https://as.example.com/par"])),
    "rfc-proof-other-server": one(RFC_TOKEN_PROOF, "dpop.htu_mismatch", now=RFC_TOKEN_IAT),
    # §4.3 step 11 (iat), §11.1.
    "iat-plus-11s": one(proof(iat=int(NOW) + 11), "dpop.iat_out_of_window"),
    "iat-minus-61s": one(proof(iat=int(NOW) - 61), "dpop.iat_out_of_window"),
    "iat-one-hour-old": one(proof(iat=int(NOW) - 3600), "dpop.iat_out_of_window"),
    "iat-huge-float": one(proof(iat=1e308), "dpop.iat_out_of_window"),
    "iat-huge-int": one(proof(iat=10**300), "dpop.iat_out_of_window"),
    "iat-string": one(proof(iat=str(int(NOW))), "dpop.bad_claim"),
    "iat-bool": one(proof(iat=True), "dpop.bad_claim"),
    "iat-null": one(proof(iat=None), "dpop.bad_claim"),
    "iat-infinite": one(proof(raw_payload=b64(
        b'{"jti":"a","htm":"POST","htu":"' + ENDPOINT.encode() + b'","iat":1e400}')),
        "dpop.bad_claim"),
    "rfc-proof-61s-later": one(RFC_TOKEN_PROOF, "dpop.iat_out_of_window",
                               now=RFC_TOKEN_IAT + 61, policy=RFC_POLICY),
    "rfc-refresh-proof-at-token-time": one(RFC_REFRESH_PROOF, "dpop.iat_out_of_window",
                                           now=RFC_TOKEN_IAT, policy=RFC_POLICY),
    # RFC 7519 §4.1.4, §4.1.5 when present.
    "exp-passed": one(proof(exp=int(NOW) - 30), "dpop.expired"),
    "nbf-future": one(proof(nbf=int(NOW) + 30), "dpop.not_yet_valid"),
    "exp-string": one(proof(exp="soon"), "dpop.bad_claim"),
    # ath refused by policy (dpop.reject_ath).
    "ath-rejected-by-policy": one(RFC_RESOURCE_PROOF, "dpop.ath_present", method="GET",
                                  now=1562262618, policy=RFC_NO_ATH, htu_targets=RFC_RESOURCE),
    # §8 nonces: use_dpop_nonce with a fresh DPoP-Nonce.
    "nonce-missing": one(proof(), "dpop.nonce_missing", **WITH_NONCE),
    "nonce-garbage": one(proof(nonce="eyJ7S_zG.eyJH0-Z.HX4w-7v"), "dpop.nonce_invalid",
                         **WITH_NONCE),
    "nonce-expired": one(proof(nonce=nonce_at(181)), "dpop.nonce_invalid", **WITH_NONCE),
    "nonce-from-the-future": one(proof(nonce=nonce_at(-181)), "dpop.nonce_invalid",
                                 **WITH_NONCE),
    "nonce-unknown-secret": one(proof(nonce=nonce_at(0, secrets=("x" * 40,))),
                                "dpop.nonce_invalid", **WITH_NONCE),
    "nonce-other-purpose": one(proof(nonce=nonce_at(0, purpose="attestation-challenge")),
                               "dpop.nonce_invalid", **WITH_NONCE),
    "nonce-not-string": one(proof(nonce=123), "dpop.nonce_invalid", **WITH_NONCE),
    "nonce-optional-but-invalid": one(proof(nonce="bad"), "dpop.nonce_invalid",
                                      nonces=NONCES),
    # Check order: the nonce is asked for only when everything else is right.
    "nonce-missing-and-bad-signature": one(proof(signer=OTHER_ES256), "dpop.bad_signature",
                                           **WITH_NONCE),
    "nonce-missing-and-htu-mismatch": one(proof(htu="https://x.example/token"),
                                          "dpop.htu_mismatch", **WITH_NONCE),
    "nonce-missing-and-stale-iat": one(proof(iat=int(NOW) - 120), "dpop.iat_out_of_window",
                                       **WITH_NONCE),
    "nonce-required-but-unconfigured": one(proof(), "dpop.nonce_unconfigured",
                                           nonce_required=True),
}


def _run(case: Case) -> DpopProof | OAuthError:
    return validate_proof(case.values, method=case.method, policy=case.policy, now=case.now,
                          nonces=case.nonces, nonce_required=case.nonce_required,
                          htu_targets=case.htu_targets)


@pytest.mark.parametrize("case", ACCEPT.values(), ids=ACCEPT.keys())
def test_accepts(case: Case) -> None:
    result = _run(case)
    assert isinstance(result, DpopProof), result
    payload = json.loads(base64.urlsafe_b64decode(case.values[0].split(".")[1] + "==="))
    header = json.loads(base64.urlsafe_b64decode(case.values[0].split(".")[0] + "==="))
    expected_jkt = case.jkt or jose_keys.thumbprint(header["jwk"])
    assert result.jkt == expected_jkt
    assert result.jti == payload["jti"]
    assert result.iat == int(payload["iat"])
    assert result.replay_key == f"{expected_jkt}:{payload['jti']}"
    assert result.replay_ttl_seconds == case.policy.replay_ttl_seconds
    assert result.nonce == payload.get("nonce")


@pytest.mark.parametrize("case", REFUSE.values(), ids=REFUSE.keys())
def test_refuses(case: Case) -> None:
    result = _run(case)
    assert isinstance(result, OAuthError), result
    assert result.result_code == case.expect, (result.description, result.detail)
    assert not result.detail.startswith("unexpected"), result.detail  # no bug was caught
    if case.expect.startswith("dpop.nonce_") and case.expect != "dpop.nonce_unconfigured":
        # §8: 400 use_dpop_nonce with exactly one DPoP-Nonce header of 1*NQCHAR.
        assert (result.code, result.status) == ("use_dpop_nonce", 400)
        nonce_headers = [v for n, v in result.headers if n.lower() == "dpop-nonce"]
        assert len(nonce_headers) == 1
        assert NQCHAR.fullmatch(nonce_headers[0])
        assert NONCES.verify(nonce_headers[0], case.now)
    elif case.expect == "dpop.nonce_unconfigured":
        assert result.status == 500
    else:
        # §5: 400 invalid_dpop_proof, without a nonce hint.
        assert (result.code, result.status) == ("invalid_dpop_proof", 400)
        assert result.headers == ()
    # Descriptions are short and never echo the proof (a secret: never in an answer or a log).
    assert len(result.description) < 120
    for value in case.values:
        if len(value) > 20:
            assert value not in result.description
            assert value not in result.detail


def test_at_least_fifty_cases() -> None:
    assert len(ACCEPT) + len(REFUSE) >= 50


# ---------------------------------------------------------------------------------------
# Vectors and properties that are not one call.


def test_rfc_thumbprint_vector() -> None:
    assert jose_keys.thumbprint(RFC_JWK) == RFC_JKT  # §6.1


def test_rfc_examples_share_a_jti_and_the_ttl_is_the_window() -> None:
    """§5's two proofs reuse one jti 2,680 s apart: the replay key is the same, so the TTL must
    end before the second is presented."""
    first = validate_proof((RFC_TOKEN_PROOF,), method="POST", policy=RFC_POLICY,
                           now=RFC_TOKEN_IAT, nonces=None, nonce_required=False)
    second = validate_proof((RFC_REFRESH_PROOF,), method="POST", policy=RFC_POLICY,
                            now=RFC_REFRESH_IAT, nonces=None, nonce_required=False)
    assert isinstance(first, DpopProof)
    assert isinstance(second, DpopProof)
    assert first.replay_key == second.replay_key
    assert first.replay_ttl_seconds < RFC_REFRESH_IAT - RFC_TOKEN_IAT
    # ...and covers the whole window in which the first could be presented again.
    assert first.replay_ttl_seconds >= (RFC_POLICY.iat_max_age_seconds
                                        + RFC_POLICY.iat_max_future_seconds)


def test_htu_mismatch_logs_both_values() -> None:
    result = _run(one(proof(htu="https://evil.example.com/token?q"), "dpop.htu_mismatch"))
    assert isinstance(result, OAuthError)
    assert "https://evil.example.com/token?q" in result.detail
    assert ENDPOINT in result.detail
    assert "evil" not in result.description


def test_iat_refusal_names_both_times_in_the_log() -> None:
    result = _run(one(proof(iat=int(NOW) - 61), "dpop.iat_out_of_window"))
    assert isinstance(result, OAuthError)
    assert str(int(NOW) - 61) in result.detail
    assert str(int(NOW)) in result.detail


def test_nonce_retry_with_the_hint_succeeds() -> None:
    """The §8 dance: no nonce → use_dpop_nonce + DPoP-Nonce → retry with it → accepted."""
    first = _run(one(proof(jti="first"), "dpop.nonce_missing", **WITH_NONCE))
    assert isinstance(first, OAuthError)
    nonce = dict(first.headers)["DPoP-Nonce"]
    again = _run(one(proof(jti="second", nonce=nonce), "accept", now=NOW + 5, **WITH_NONCE))
    assert isinstance(again, DpopProof)
    assert again.nonce == nonce


def test_a_nonce_from_another_replica_is_accepted() -> None:
    replica = WindowedHmac((SECRET,), 60, 2, "dpop-nonce")
    result = _run(one(proof(nonce=replica.issue(NOW - 61)), "accept", **WITH_NONCE))
    assert isinstance(result, DpopProof)


# ---------------------------------------------------------------------------------------
# Nothing raises on any input.

_VALID = proof()
_PIECES = _VALID.split(".")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=300), max_size=3))
def test_never_raises_on_text(values: list[str]) -> None:
    result = validate_proof(tuple(values), method="POST", policy=POLICY, now=NOW,
                            nonces=NONCES, nonce_required=True)
    assert isinstance(result, OAuthError)
    assert not result.detail.startswith("unexpected")


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "nonce", "exp", "nbf",
                                        "ath", "x"]), _JSON),
       st.dictionaries(st.sampled_from(["typ", "alg", "jwk", "crit", "kid"]), _JSON))
def test_never_raises_on_any_json(payload: dict[str, Any], header: dict[str, Any]) -> None:
    for token in (
        proof(payload=payload),  # properly signed, arbitrary claims
        proof(header=header, signature=lambda _: b"\1" * 64),  # arbitrary header members
        f"{b64json(header)}.{b64json(payload)}.{_PIECES[2]}",
    ):
        result = validate_proof((token,), method="POST", policy=POLICY, now=NOW,
                                nonces=NONCES, nonce_required=False)
        assert isinstance(result, DpopProof | OAuthError)
        if isinstance(result, OAuthError):
            assert not result.detail.startswith("unexpected"), result.detail


def test_deeply_nested_json_is_refused_not_raised() -> None:
    deep = b64(b"[" * 10_000)
    for token in (f"{deep}.{_PIECES[1]}.{_PIECES[2]}", f"{_PIECES[0]}.{deep}.{_PIECES[2]}"):
        result = validate_proof((token,), method="POST", policy=POLICY, now=NOW, nonces=None,
                                nonce_required=False)
        assert isinstance(result, OAuthError)
        assert result.result_code in ("dpop.malformed", "dpop.bad_signature")
