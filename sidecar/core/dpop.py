"""DPoP proof validation at the token endpoint (RFC 9449 §4.3), errors per §5 and §8.

`validate_proof` is pure: header values, the request method, a precomputed `DpopPolicy`, the
time and the nonce issuer in; a `DpopProof` or an `OAuthError` out. It never raises and never
touches the store: the caller burns the replay key (`DpopProof.replay_key`, for
`DpopProof.replay_ttl_seconds`) once every other check of the request has passed, so that a
request refused for another reason does not use up its proof's `jti`.

Order of the checks, and why the nonce comes last
-------------------------------------------------
1. one `DPoP` header (§4.3 step 1), a compact JWS (step 2);
2. the JOSE header: `typ` (step 4), no `crit` we do not understand (RFC 7515 §4.1.11), `alg`
   (step 5), `jwk` public and consistent with `alg` (step 7);
3. the signature (step 6);
4. the claims: present (step 3), `jti` bounded (§11.1), `htm` (step 8), `htu` (step 9), `iat`
   (step 11), `exp`/`nbf` when present (RFC 7519 §4.1.4, §4.1.5), `ath` by policy;
5. the nonce (step 10).

`use_dpop_nonce` is the one error a client recovers from without changing anything but the
nonce: it is an instruction to retry (§8), and it carries a fresh `DPoP-Nonce`. It is
therefore only given to a proof that is valid in every other respect, so that the retry
succeeds. A proof with a bad signature, a wrong `htu` or a stale `iat` gets
`invalid_dpop_proof` first (it would fail again after the retry, and an unauthenticated
proof gets no hint); an expired or unknown nonce on an otherwise valid proof gets
`use_dpop_nonce`, not `invalid_dpop_proof` (draft-dpop#91). The replay check, being
stateful, is the caller's and comes after all of these.

The `iat` window is always enforced, nonce or not (§4.3 step 11 allows a nonce to stand in for
`iat`; we do not, so that one rule bounds the life of every proof and the replay TTL).

Speed: the JOSE header of a client's proofs is the same from one proof to the next (`typ`,
`alg`, `jwk`), so the parsed header — key object and thumbprint included — is cached by its
base64url text once a signature made with it has verified (bounded LRU; garbage and
unsigned headers never enter it). A cached ES256 proof then costs: one regex, one base64 and
one JSON decode of the payload, one ECDSA verification with `cryptography`, no PyJWT.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sidecar import errors
from sidecar.core.jwk import (
    BoundedCache,
    JwkError,
    PublicKey,
    PublicKeyInfo,
    b64url_decode,
    public_key,
    strict_json_object,
)
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError
from sidecar.settings import ConfigError, DpopSettings

MAX_PROOF_LENGTH: Final = 16384  # an 8192-bit RSA proof is under 5 KiB
MAX_HTU_LENGTH: Final = 2048  # scheme, authority and path; query and fragment are dropped
_DETAIL_MAX: Final = 200
NONCE_HEADER: Final = "DPoP-Nonce"
TYP: Final = "dpop+jwt"

_COMPACT: Final = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


# ---------------------------------------------------------------------------------------
# Results.


@dataclass(frozen=True, slots=True)
class DpopProof:
    """An accepted proof. `replay_key` (`<jkt>:<jti>`) must be burned by the caller with
    `first_use(..., ttl_seconds=replay_ttl_seconds)` after the rest of the request passed."""

    jkt: str
    jti: str
    iat: int
    nonce: str | None
    replay_key: str
    replay_ttl_seconds: float


@dataclass(frozen=True, slots=True)
class DpopPolicy:
    """What `validate_proof` checks against, computed once at startup."""

    algorithms: frozenset[str]
    htu_targets: frozenset[str]  # normalised with normalize_htu
    iat_max_age_seconds: int
    iat_max_future_seconds: int
    max_jti_length: int
    reject_ath: bool

    @classmethod
    def from_settings(cls, settings: DpopSettings, public_token_endpoint: str) -> DpopPolicy:
        """Raises ConfigError when the endpoint or an alias is not an http(s) URL."""
        problems: list[str] = []
        targets: set[str] = set()
        for key, url in [("server.public_token_endpoint", public_token_endpoint),
                         *(("dpop.htu_aliases", alias) for alias in settings.htu_aliases)]:
            normalised = normalize_htu(url)
            if normalised is None:
                problems.append(f"{key}: not usable as a DPoP htu: {url!r}")
            else:
                targets.add(normalised)
        if problems:
            raise ConfigError(problems)
        # Only asymmetric algorithms this module can verify ever get in (§4.3 step 5, §11.6),
        # whatever the settings validation lets through.
        algorithms = frozenset(a for a in settings.algorithms if a in ALGORITHMS)
        return cls(
            algorithms=algorithms,
            htu_targets=frozenset(targets),
            iat_max_age_seconds=settings.iat_max_age_seconds,
            iat_max_future_seconds=settings.iat_max_future_seconds,
            max_jti_length=settings.max_jti_length,
            reject_ath=settings.reject_ath,
        )

    @property
    def replay_ttl_seconds(self) -> float:
        """How long a `jti` must be remembered: the whole acceptance window of a proof
        (§11.1), plus one second for the rounding of `iat` to whole seconds. Not longer: the
        RFC §5 examples reuse one `jti` 2,680 s apart and both must pass."""
        return float(self.iat_max_age_seconds + self.iat_max_future_seconds + 1)


def normalize_htu_targets(urls: Iterable[str]) -> frozenset[str]:
    """Normalised targets for `validate_proof(htu_targets=...)` (e.g. the PAR endpoint).
    Raises ValueError on a URL that cannot be an `htu`."""
    targets: set[str] = set()
    for url in urls:
        normalised = normalize_htu(url)
        if normalised is None:
            raise ValueError(f"not usable as a DPoP htu: {url!r}")
        targets.add(normalised)
    return frozenset(targets)


# ---------------------------------------------------------------------------------------
# htu normalisation: RFC 9449 §4.3 ("servers SHOULD employ syntax-based normalization
# (Section 6.2.2 of [RFC3986]) and scheme-based normalization (Section 6.2.3 of [RFC3986])").

_URI_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~:/@!$&'()*+,;=%\[\]]*")  # RFC 3986 §2
_PCT: Final = re.compile(r"%(.{0,2})", re.DOTALL)
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_UNRESERVED: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def normalize_htu(url: str) -> str | None:
    """`scheme://host[:port]/path` with query and fragment dropped (§4.3 step 9), scheme and
    host lower-cased, the default port dropped, an empty path made `/` (RFC 3986 §6.2.3),
    percent-escapes upper-cased and unreserved ones decoded (§6.2.2.1, §6.2.2.2), dot segments
    removed (§6.2.2.3). None when `url` is not an absolute http(s) URI without userinfo."""
    if not isinstance(url, str):
        return None
    end = len(url)
    for separator in "?#":
        index = url.find(separator, 0, end)
        if index != -1:
            end = index
    base = url[:end]
    if len(base) > MAX_HTU_LENGTH:
        return None
    return _normalize_base(base)


@functools.lru_cache(maxsize=1024)
def _normalize_base(base: str) -> str | None:
    # Python's urlsplit silently drops tabs and newlines and accepts non-ASCII: check the
    # characters first, so that what is compared is what the client signed.
    if not _URI_CHARS.fullmatch(base):
        return None
    scheme, separator, rest = base.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        return None
    slash = rest.find("/")
    authority, path = (rest, "") if slash == -1 else (rest[:slash], rest[slash:])
    host, port = _split_authority(authority)
    if host is None:
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    normalised_path = _normalize_path(path)
    if normalised_path is None:
        return None
    return f"{scheme}://{host}{normalised_path}"


def _split_authority(authority: str) -> tuple[str | None, int | None]:
    if "@" in authority or "%" in authority:
        return None, None  # userinfo (RFC 9110 §4.2.4 forbids it) or an escaped reg-name
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            return None, None
        host, port_text = authority[: close + 1], authority[close + 1 :]
        if port_text and not port_text.startswith(":"):
            return None, None
        port_text = port_text[1:]
    else:
        host, _, port_text = authority.partition(":")
        if "[" in host or "]" in host:
            return None, None
    if not host or host == "[]":
        return None, None
    if not port_text:
        return host.lower(), None  # RFC 3986 §6.2.3: an empty port is the default one
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        return None, None
    return host.lower(), int(port_text)


def _normalize_path(path: str) -> str | None:
    if "%" in path:
        pieces = []
        position = 0
        for match in _PCT.finditer(path):
            digits = match.group(1)
            if len(digits) != 2 or not set(digits) <= _HEX:
                return None
            char = chr(int(digits, 16))
            pieces.append(path[position:match.start()])
            pieces.append(char if char in _UNRESERVED else "%" + digits.upper())
            position = match.end()
        pieces.append(path[position:])
        path = "".join(pieces)
    if not path:
        return "/"
    if "." not in path:
        return path
    # RFC 3986 §5.2.4 remove_dot_segments, for an absolute path.
    output: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if output:
                output.pop()
        elif segment != ".":
            output.append(segment)
    if segments[-1] in (".", ".."):
        output.append("")
    return "/" + "/".join(output)


# ---------------------------------------------------------------------------------------
# Algorithms: registered asymmetric JWS algorithms only (§4.3 step 5, §11.6), each tied to the
# key type and curve it may be used with (RFC 7518 §3.1, RFC 8037 §3.1).

Verifier = Callable[[PublicKey, bytes, bytes], bool]


@dataclass(frozen=True, slots=True)
class _Algorithm:
    kty: str
    crv: str
    verify: Verifier


def _ecdsa(hash_algorithm: hashes.HashAlgorithm, size: int) -> Verifier:
    signature_algorithm = ec.ECDSA(hash_algorithm)

    def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.4: the JWS signature is R || S, each exactly `size` octets.
        if len(signature) != 2 * size or not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        der = encode_dss_signature(int.from_bytes(signature[:size], "big"),
                                   int.from_bytes(signature[size:], "big"))
        try:
            key.verify(der, data, signature_algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify


def _rsa(padding_: padding.AsymmetricPadding, hash_algorithm: hashes.HashAlgorithm) -> Verifier:
    def verify(key: PublicKey, signature: bytes, data: bytes) -> bool:
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        try:
            key.verify(signature, data, padding_, hash_algorithm)
        except (InvalidSignature, ValueError):
            return False
        return True

    return verify


def _pss(hash_algorithm: hashes.HashAlgorithm) -> Verifier:
    # RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash output.
    return _rsa(padding.PSS(padding.MGF1(hash_algorithm), hash_algorithm.digest_size),
                hash_algorithm)


def _eddsa(key: PublicKey, signature: bytes, data: bytes) -> bool:
    if len(signature) != 64 or not isinstance(key, Ed25519PublicKey):
        return False
    try:
        key.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


ALGORITHMS: Final[dict[str, _Algorithm]] = {
    "ES256": _Algorithm("EC", "P-256", _ecdsa(hashes.SHA256(), 32)),
    "ES384": _Algorithm("EC", "P-384", _ecdsa(hashes.SHA384(), 48)),
    "ES512": _Algorithm("EC", "P-521", _ecdsa(hashes.SHA512(), 66)),
    "EdDSA": _Algorithm("OKP", "Ed25519", _eddsa),
    "Ed25519": _Algorithm("OKP", "Ed25519", _eddsa),  # RFC 9864 fully-specified name
    "RS256": _Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA256())),
    "RS384": _Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA384())),
    "RS512": _Algorithm("RSA", "", _rsa(padding.PKCS1v15(), hashes.SHA512())),
    "PS256": _Algorithm("RSA", "", _pss(hashes.SHA256())),
    "PS384": _Algorithm("RSA", "", _pss(hashes.SHA384())),
    "PS512": _Algorithm("RSA", "", _pss(hashes.SHA512())),
}


# ---------------------------------------------------------------------------------------
# Parsing.


@dataclass(frozen=True, slots=True)
class _Header:
    alg: str
    algorithm: _Algorithm
    key: PublicKeyInfo


_HEADERS: BoundedCache[str, _Header] = BoundedCache(4096)


def clear_caches() -> None:
    _HEADERS.clear()
    _normalize_base.cache_clear()


def _invalid(reason: str, description: str, detail: str = "") -> OAuthError:
    return errors.invalid_dpop_proof(f"dpop.{reason}", description, detail)


_MISSING = _invalid("missing", "A DPoP proof is required.")
_MULTIPLE = _invalid("multiple_headers", "More than one DPoP header was sent.")
_TOO_LARGE = _invalid("malformed", "The DPoP proof is too large.")
_NOT_JWS = _invalid("malformed", "The DPoP proof is not a compact JWS.")
_BAD_HEADER = _invalid("malformed", "The DPoP proof header is not a valid JSON object.")
_BAD_PAYLOAD = _invalid("malformed", "The DPoP proof payload is not a valid JSON object.")
_BAD_TYP = _invalid("bad_typ", "The DPoP proof typ must be dpop+jwt.")
_CRIT = _invalid("unsupported_crit", "The DPoP proof has critical header parameters.")
_BAD_ALG = _invalid("bad_alg", "The DPoP proof alg is not supported.")
_ALG_KEY = _invalid("bad_alg", "The DPoP proof alg does not match its jwk.")
_NO_JWK = _invalid("bad_jwk", "The DPoP proof header has no jwk object.")
_BAD_SIGNATURE = _invalid("bad_signature", "The DPoP proof signature is invalid.")
_BAD_JTI = _invalid("bad_jti", "The DPoP proof jti is not a valid identifier.")
_BAD_IAT = _invalid("bad_claim", "The DPoP proof iat is not a number.")
_BAD_HTU = _invalid("htu_mismatch", "The DPoP proof htu does not match this endpoint.")
_BAD_HTM = _invalid("htm_mismatch", "The DPoP proof htm does not match the request method.")
_ATH = _invalid("ath_present", "The DPoP proof must not carry ath at the token endpoint.")


def _clip(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _DETAIL_MAX else text[:_DETAIL_MAX] + "..."


def _number(value: object) -> float | int | None:
    """A JSON number usable as a NumericDate (RFC 7519 §2); never a bool."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parse_header(encoded: str) -> _Header | OAuthError:
    header = strict_json_object(encoded)
    if header is None:
        return _BAD_HEADER
    if header.get("typ") != TYP:  # §4.2, §4.3 step 4, §11.5: explicit typing
        return _BAD_TYP.with_detail(f"typ={_clip(header.get('typ'))}")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
        return _CRIT
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        return _BAD_ALG.with_detail(f"alg={_clip(alg)}")  # §4.3 step 5: none, HS*, unknown
    algorithm = ALGORITHMS[alg]
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):  # §4.2: jwk is REQUIRED and is a JWK object
        return _NO_JWK
    key = public_key(jwk)
    if isinstance(key, JwkError):  # §4.3 step 7: no private key; symmetric keys neither
        return _invalid(key.reason, key.message)
    # The key must be of the type and curve the algorithm is defined for (RFC 7518 §3.1),
    # and agree with the key's own `alg` when it has one (RFC 7517 §4.4).
    if key.kty != algorithm.kty or key.crv != algorithm.crv:
        return _ALG_KEY.with_detail(f"alg={alg} kty={key.kty} crv={key.crv}")
    if "alg" in jwk and jwk["alg"] != alg:
        return _ALG_KEY.with_detail(f"alg={alg} jwk.alg={_clip(jwk['alg'])}")
    return _Header(alg, algorithm, key)


# ---------------------------------------------------------------------------------------
# Validation.


def validate_proof(
    values: tuple[str, ...],
    *,
    method: str,
    policy: DpopPolicy,
    now: float,
    nonces: WindowedHmac | None,
    nonce_required: bool,
    htu_targets: frozenset[str] | None = None,
) -> DpopProof | OAuthError:
    """Check the `DPoP` header values of one request against RFC 9449 §4.3.

    `htu_targets` (normalised, see `normalize_htu_targets`) replaces the policy's targets,
    for an endpoint other than the token endpoint (PAR, §10.1). Never raises.
    """
    try:
        return _validate(values, method=method, policy=policy, now=now, nonces=nonces,
                         nonce_required=nonce_required,
                         targets=policy.htu_targets if htu_targets is None else htu_targets)
    except Exception as exc:  # a bug must still be a 400, never a 500 or a crash
        return _invalid("malformed", "The DPoP proof is malformed.",
                        f"unexpected {type(exc).__name__}")


def _validate(
    values: tuple[str, ...],
    *,
    method: str,
    policy: DpopPolicy,
    now: float,
    nonces: WindowedHmac | None,
    nonce_required: bool,
    targets: frozenset[str],
) -> DpopProof | OAuthError:
    # §4.3 step 1: not more than one DPoP header (the caller decides when none is fine).
    if len(values) != 1:
        return _MULTIPLE if values else _MISSING
    proof = values[0]
    # §4.3 step 2: one well-formed JWT, in the JWS compact serialisation (§4.2).
    if not isinstance(proof, str):
        return _NOT_JWS
    if len(proof) > MAX_PROOF_LENGTH:
        return _TOO_LARGE
    match = _COMPACT.fullmatch(proof)
    if match is None:
        return _NOT_JWS
    encoded_header, encoded_payload, encoded_signature = match.groups()

    # §4.3 steps 4, 5, 7: typ, alg, jwk (parsed once per distinct header).
    header = _HEADERS.get(encoded_header)
    cached = header is not None
    if header is None:
        parsed = _parse_header(encoded_header)
        if isinstance(parsed, OAuthError):
            return parsed
        header = parsed
    if header.alg not in policy.algorithms:  # §4.3 step 5: "acceptable per local policy"
        return _BAD_ALG.with_detail(f"alg={header.alg} not in dpop.algorithms")

    # §4.3 step 6: the signature verifies with the key in the jwk header.
    signature = b64url_decode(encoded_signature)
    if signature is None:
        return _NOT_JWS
    signing_input = f"{encoded_header}.{encoded_payload}".encode("ascii")
    if not header.algorithm.verify(header.key.key, signature, signing_input):
        return _BAD_SIGNATURE
    if not cached:
        _HEADERS.put(encoded_header, header)

    claims = strict_json_object(encoded_payload)
    if claims is None:
        return _BAD_PAYLOAD
    # §4.3 step 3: the claims required by §4.2.
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            return _invalid("missing_claim", f"The DPoP proof has no {name} claim.")

    # §4.2 / §11.1: jti is a unique identifier; bounded so replay keys stay small.
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti or len(jti) > policy.max_jti_length:
        return _BAD_JTI.with_detail(
            f"jti of type {type(jti).__name__}" if not isinstance(jti, str)
            else f"jti length {len(jti)}, at most {policy.max_jti_length}")

    # §4.3 step 8: htm matches the method (methods are case-sensitive, RFC 9110 §9.1).
    htm = claims["htm"]
    if htm != method:
        return _BAD_HTM.with_detail(f"htm={_clip(htm)} method={_clip(method)}")

    # §4.3 step 9: htu matches the endpoint, query and fragment ignored, after RFC 3986
    # normalisation. Both values go to the log (never to the client).
    htu = claims["htu"]
    normalised = normalize_htu(htu) if isinstance(htu, str) else None
    if normalised is None or normalised not in targets:
        return _BAD_HTU.with_detail(
            f"htu={_clip(htu)} normalised={_clip(normalised)} expected={sorted(targets)}")

    # §4.3 step 11, §11.1: iat within [now - max_age, now + max_future].
    iat = _number(claims["iat"])
    if iat is None:
        return _BAD_IAT
    if iat < now - policy.iat_max_age_seconds or iat > now + policy.iat_max_future_seconds:
        too_old = iat < now
        return _invalid(
            "iat_out_of_window",
            "The DPoP proof is too old." if too_old else "The DPoP proof iat is in the future.",
            f"iat={_clip(iat)} now={now:.3f} window=-{policy.iat_max_age_seconds}s/"
            f"+{policy.iat_max_future_seconds}s",
        )

    # Not in RFC 9449, but a JWT that carries them must honour them (RFC 7519 §4.1.4,
    # §4.1.5); the clock-skew allowance is the one granted to a future iat.
    skew = policy.iat_max_future_seconds
    for name in ("exp", "nbf"):
        if name in claims:
            value = _number(claims[name])
            if value is None:
                return _invalid("bad_claim", f"The DPoP proof {name} is not a number.")
            if name == "exp" and now > value + skew:
                return _invalid("expired", "The DPoP proof has expired.",
                                f"exp={value} now={now:.3f}")
            if name == "nbf" and now + skew < value:
                return _invalid("not_yet_valid", "The DPoP proof is not valid yet.",
                                f"nbf={value} now={now:.3f}")

    # §4.3 step 12 applies to resource servers only; a token endpoint may refuse ath by policy.
    if policy.reject_ath and "ath" in claims:
        return _ATH

    # §4.3 step 10, §8: the nonce, last (see the module docstring).
    nonce = claims.get("nonce")
    if nonces is None:
        if nonce_required:
            return errors.server_error("dpop.nonce_unconfigured", "The server is misconfigured.",
                                       "dpop.nonce_required without dpop.nonce_secret_file")
        # A nonce the sidecar did not issue (e.g. the upstream's own) is the upstream's affair.
    elif "nonce" not in claims:
        if nonce_required:
            return errors.use_dpop_nonce(
                "dpop.nonce_missing", "Authorization server requires nonce in DPoP proof."
            ).with_headers((NONCE_HEADER, nonces.issue(now)))
    elif not nonces.verify(nonce, now):
        # §8: an invalid or expired nonce is answered like a missing one, with a fresh one.
        return errors.use_dpop_nonce(
            "dpop.nonce_invalid", "The DPoP proof nonce is invalid or has expired."
        ).with_headers((NONCE_HEADER, nonces.issue(now)))

    jkt = header.key.thumbprint
    return DpopProof(
        jkt=jkt,
        jti=jti,
        iat=int(iat),
        nonce=nonce if isinstance(nonce, str) else None,
        replay_key=f"{jkt}:{jti}",
        replay_ttl_seconds=policy.replay_ttl_seconds,
    )
