"""JSON Web Key Sets (RFC 7517 §5) and verifying a signed JWT with one.

Used by client assertions (`private_key_jwt`, `client_secret_jwt`; RFC 7523 §3), by
`self_signed_tls_client_auth` (the registered certificates are the JWKS `x5c`, RFC 8705 §2.2)
and by the jwt-bearer grant (RFC 7523 §3 with trusted issuers).

Its parts:
- `parse_jwks`: a JWKS document to `JwkEntry`s. `strict` for what the operator wrote (any
  unusable key is a configuration error), lenient for what is fetched (keys we cannot use,
  e.g. encryption keys, are skipped; a set with none left is an error).
- `JwkEntry`: one usable key, what a `JwksSource` (sidecar.ports) returns; the source of
  `jwks_uri` keys, a bounded TTL cache over a `Fetcher`, is `sidecar.adapters.jwks`.
- `select_keys`, `verify_signature`, `verify_hmac`: the keys of a set a JWS may have been
  signed with, and verifying it with them (the algorithms are `sidecar.core.jose.algorithms`:
  registered algorithms only, key type and curve tied to the algorithm; `none` does not
  exist here).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sidecar.core.jose.algorithms import ALGORITHMS, hmac_matches
from sidecar.core.jose.compact import CompactJws
from sidecar.core.jose.keys import PublicKeyInfo, public_key
from sidecar.core.mtls.certificate import x5t_s256

MAX_KEYS: Final = 64  # keys kept from one set; real sets hold 1-5
MAX_X5C: Final = 10
# Asymmetric JWS algorithms with their key type and verifier (RFC 7518 §3, RFC 8037 §3.1).
ASYMMETRIC_ALGORITHMS: Final = ALGORITHMS


class JwksError(Exception):
    """A key set could not be read, fetched or used. The message names the problem (never a
    secret); it is for logs and `OAuthError.detail`, not for the client."""


@dataclass(frozen=True, slots=True)
class JwkEntry:
    """One usable signing key of a set."""

    key: PublicKeyInfo
    kid: str | None = None
    alg: str | None = None
    x5c: tuple[bytes, ...] = ()  # DER, the key's own certificate first (RFC 7517 §4.7)

    @property
    def x5t_s256(self) -> str | None:
        """RFC 8705 §3.1 thumbprint of the key's certificate, when the key has one."""
        return x5t_s256(self.x5c[0]) if self.x5c else None

    def __repr__(self) -> str:
        return f"JwkEntry(kid={self.kid!r}, alg={self.alg!r}, kty={self.key.kty!r})"


# ---------------------------------------------------------------------------------------
# Parsing a set.


def parse_jwks(document: object, *, strict: bool) -> tuple[JwkEntry, ...]:
    """The signing keys of a JWKS (`{"keys": [...]}`); raises JwksError.

    Skipped in both modes: keys marked for another use (`use` other than `sig`, `key_ops`
    without `verify`). A key with private members is always an error: a set that publishes
    private keys is a leak to be fixed, not a key to use.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except (ValueError, RecursionError) as exc:
            raise JwksError("the JWKS is not valid JSON") from exc
    keys = document.get("keys") if isinstance(document, Mapping) else None
    if not isinstance(keys, list):
        raise JwksError('the JWKS is not an object with a "keys" array')
    entries: list[JwkEntry] = []
    for index, member in enumerate(keys):
        try:
            entry = _entry(member)
        except JwksError as exc:
            if strict or "private" in str(exc):
                raise JwksError(f"keys[{index}]: {exc}") from None
            continue
        if entry is not None:
            entries.append(entry)
    if not entries:
        raise JwksError("the JWKS has no usable signing key")
    if len(entries) > MAX_KEYS:
        raise JwksError(f"the JWKS has more than {MAX_KEYS} signing keys")
    return tuple(entries)


def _entry(member: object) -> JwkEntry | None:
    if not isinstance(member, Mapping):
        raise JwksError("not a JSON object")
    use, key_ops = member.get("use"), member.get("key_ops")
    if use is not None and use != "sig":
        return None
    if isinstance(key_ops, list) and "verify" not in key_ops:
        return None
    kid, alg = member.get("kid"), member.get("alg")
    if kid is not None and not isinstance(kid, str):
        raise JwksError("kid is not a string")
    if alg is not None and (not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS):
        raise JwksError(f"alg {alg!r} is not a supported asymmetric JWS algorithm")
    info = public_key(member)
    if not isinstance(info, PublicKeyInfo):
        if info.reason == "private_key":
            raise JwksError("the key has private members: publish only the public key")
        raise JwksError(info.message)
    return JwkEntry(info, kid, alg, _x5c(member.get("x5c"), info))


def _x5c(value: object, info: PublicKeyInfo) -> tuple[bytes, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value or len(value) > MAX_X5C:
        raise JwksError(f"x5c is not an array of 1 to {MAX_X5C} certificates")
    ders: list[bytes] = []
    for item in value:
        # RFC 7517 §4.7: standard base64 of the DER, not base64url.
        try:
            der = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
            certificate = x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError):
            raise JwksError("x5c holds something that is not a base64 DER certificate") \
                from None
        ders.append(der)
        if len(ders) == 1 and _spki(certificate) != info.key.public_bytes(*_SPKI):
            # RFC 7517 §4.7: "The key in the first certificate MUST match the public key".
            raise JwksError("the first x5c certificate does not hold the key of the JWK")
    return tuple(ders)


_SPKI: Final = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki(certificate: x509.Certificate) -> bytes:
    return certificate.public_key().public_bytes(*_SPKI)


def select_keys(keys: Sequence[JwkEntry], alg: str, kid: str | None) -> list[JwkEntry]:
    """The keys a JWS with this `alg` and `kid` may have been signed with."""
    algorithm = ASYMMETRIC_ALGORITHMS.get(alg)
    if algorithm is None:
        return []
    return [k for k in keys
            if k.key.kty == algorithm.kty and (not algorithm.crv or k.key.crv == algorithm.crv)
            and (k.alg is None or k.alg == alg) and (kid is None or k.kid == kid)]


# ---------------------------------------------------------------------------------------
# Verifying a compact JWS / JWT with the keys of a set.


def verify_signature(jws: CompactJws, alg: str, keys: Sequence[JwkEntry]) -> bool:
    """True when one of `keys` (already selected with `select_keys`) verifies the JWS."""
    algorithm = ASYMMETRIC_ALGORITHMS.get(alg)
    if algorithm is None:
        return False
    return any(algorithm.verify(k.key.key, jws.signature, jws.signing_input) for k in keys)


def verify_hmac(jws: CompactJws, alg: str, secret: bytes) -> bool:
    return hmac_matches(alg, secret, jws.signature, jws.signing_input)
