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
`alg`, `jwk`), so the parsed header — key object and thumbprint included — is kept by its
base64url text once a signature made with it has verified (`jose.algorithms.VerifiedHeaders`:
bounded LRU; garbage and unsigned headers never enter it). A cached ES256 proof then costs:
one regex, one base64 and one JSON decode of the payload, one ECDSA verification with
`cryptography`, no PyJWT. The `htu` rules are in `sidecar.core.htu`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sidecar import errors
from sidecar.core import htu
from sidecar.core.htu import MAX_HTU_LENGTH, normalize_htu, normalize_htu_targets
from sidecar.core.jose.algorithms import ALGORITHMS, EmbeddedKeyHeader, VerifiedHeaders
from sidecar.core.jose.claims import before_nbf, iat_window, numeric_date, past_exp, valid_jti
from sidecar.core.jose.compact import (
    b64url_decode,
    b64url_encode,
    split_compact,
    strict_json_object,
)
from sidecar.core.jose.keys import JwkError, public_key
from sidecar.core.nonces import WindowedHmac
from sidecar.core.syntax import clip
from sidecar.errors import OAuthError
from sidecar.settings import ConfigError, DpopSettings

__all__ = ["ALGORITHMS", "MAX_HTU_LENGTH", "MAX_PROOF_LENGTH", "NONCE_HEADER", "TYP", "DpopPolicy",
           "DpopProof", "access_token_hash", "clear_caches", "normalize_htu",
           "normalize_htu_targets", "validate_proof"]

MAX_PROOF_LENGTH: Final = 16384  # an 8192-bit RSA proof is under 5 KiB
NONCE_HEADER: Final = "DPoP-Nonce"
TYP: Final = "dpop+jwt"


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


# ---------------------------------------------------------------------------------------
# Errors.

_HEADERS: Final = VerifiedHeaders(4096)


def clear_caches() -> None:
    _HEADERS.clear()
    htu.clear_cache()


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
_NO_ATH = _invalid("ath_missing", "The DPoP proof has no ath claim.")
_BAD_ATH = _invalid("ath_mismatch", "The DPoP proof ath does not match the access token.")
_BAD_EXP = _invalid("bad_claim", "The DPoP proof exp is not a number.")
_BAD_NBF = _invalid("bad_claim", "The DPoP proof nbf is not a number.")
_EXPIRED = _invalid("expired", "The DPoP proof has expired.")
_NOT_YET_VALID = _invalid("not_yet_valid", "The DPoP proof is not valid yet.")
_WINDOW_DESCRIPTIONS: Final = {"too_old": "The DPoP proof is too old.",
                               "in_future": "The DPoP proof iat is in the future."}


# ---------------------------------------------------------------------------------------
# The JOSE header (§4.3 steps 4, 5, 7).


def _parse_header(encoded: str) -> EmbeddedKeyHeader | OAuthError:
    header = strict_json_object(encoded)
    if header is None:
        return _BAD_HEADER
    if header.get("typ") != TYP:  # §4.2, §4.3 step 4, §11.5: explicit typing
        return _BAD_TYP.with_detail(f"typ={clip(header.get('typ'))}")
    if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
        return _CRIT
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        return _BAD_ALG.with_detail(f"alg={clip(alg)}")  # §4.3 step 5: none, HS*, unknown
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
        return _ALG_KEY.with_detail(f"alg={alg} jwk.alg={clip(jwk['alg'])}")
    return EmbeddedKeyHeader(alg, algorithm, key)


def _signed_header(proof: str, policy: DpopPolicy) -> tuple[EmbeddedKeyHeader, str] | OAuthError:
    """§4.3 steps 2, 4-7: the checked header of a proof whose signature verifies with its
    own `jwk`, and the still-encoded payload."""
    if len(proof) > MAX_PROOF_LENGTH:
        return _TOO_LARGE
    segments = split_compact(proof, max_length=MAX_PROOF_LENGTH)
    if segments is None:
        return _NOT_JWS
    encoded_header, encoded_payload, encoded_signature = segments
    header = _HEADERS.get(encoded_header)  # parsed once per distinct header
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
    if not _HEADERS.verify(header, encoded_header, encoded_payload, signature):
        return _BAD_SIGNATURE
    return header, encoded_payload


# ---------------------------------------------------------------------------------------
# The claims (§4.3 steps 3, 8, 9, 11).


def _check_claims(claims: Mapping[str, object], *, method: str, policy: DpopPolicy, now: float,
                  targets: frozenset[str], ath: str | None) -> OAuthError | None:
    # §4.3 step 3: the claims required by §4.2.
    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            return _invalid("missing_claim", f"The DPoP proof has no {name} claim.")
    # §4.2 / §11.1: jti is a unique identifier; bounded so replay keys stay small.
    jti = claims["jti"]
    if not valid_jti(jti, policy.max_jti_length):
        return _BAD_JTI.with_detail(
            f"jti of type {type(jti).__name__}" if not isinstance(jti, str)
            else f"jti length {len(jti)}, at most {policy.max_jti_length}")
    # §4.3 step 8: htm matches the method (methods are case-sensitive, RFC 9110 §9.1).
    htm = claims["htm"]
    if htm != method:
        return _BAD_HTM.with_detail(f"htm={clip(htm)} method={clip(method)}")
    # §4.3 step 9: htu matches the endpoint, query and fragment ignored, after RFC 3986
    # normalisation. Both values go to the log (never to the client).
    claimed = claims["htu"]
    normalised = normalize_htu(claimed) if isinstance(claimed, str) else None
    if normalised is None or normalised not in targets:
        return _BAD_HTU.with_detail(
            f"htu={clip(claimed)} normalised={clip(normalised)} expected={sorted(targets)}")
    error = _check_times(claims, policy, now)
    if error is not None:
        return error
    if ath is not None:
        return _check_ath(claims, ath)
    # §4.3 step 12 applies to resource servers only; a token endpoint may refuse ath by policy.
    if policy.reject_ath and "ath" in claims:
        return _ATH
    return None


def access_token_hash(access_token: str) -> str:
    """§4.2: `ath` is base64url(SHA-256(ASCII of the access token)), no padding."""
    return b64url_encode(hashlib.sha256(access_token.encode("utf-8", "surrogatepass")).digest())


def _check_ath(claims: Mapping[str, object], expected: str) -> OAuthError | None:
    # §4.3 step 12, §7: a proof presented with an access token carries its hash.
    if "ath" not in claims:
        return _NO_ATH
    presented = claims["ath"]
    if not isinstance(presented, str) or not hmac.compare_digest(
            presented.encode("utf-8", "surrogatepass"), expected.encode("ascii")):
        return _BAD_ATH.with_detail(f"ath={clip(presented)}")
    return None


def _check_times(claims: Mapping[str, object], policy: DpopPolicy,
                 now: float) -> OAuthError | None:
    # §4.3 step 11, §11.1: iat within [now - max_age, now + max_future].
    iat = numeric_date(claims["iat"])
    if iat is None:
        return _BAD_IAT
    outside = iat_window(iat, now, policy.iat_max_age_seconds, policy.iat_max_future_seconds)
    if outside is not None:
        return _invalid("iat_out_of_window", _WINDOW_DESCRIPTIONS[outside],
                        f"iat={clip(iat)} now={now:.3f} window=-{policy.iat_max_age_seconds}s/"
                        f"+{policy.iat_max_future_seconds}s")
    # Not in RFC 9449, but a JWT that carries them must honour them (RFC 7519 §4.1.4,
    # §4.1.5); the clock-skew allowance is the one granted to a future iat.
    skew = policy.iat_max_future_seconds
    if "exp" in claims:
        exp = numeric_date(claims["exp"])
        if exp is None:
            return _BAD_EXP
        if past_exp(exp, now, skew):
            return _EXPIRED.with_detail(f"exp={exp} now={now:.3f}")
    if "nbf" in claims:
        nbf = numeric_date(claims["nbf"])
        if nbf is None:
            return _BAD_NBF
        if before_nbf(nbf, now, skew):
            return _NOT_YET_VALID.with_detail(f"nbf={nbf} now={now:.3f}")
    return None


# ---------------------------------------------------------------------------------------
# The nonce (§4.3 step 10, §8), last: see the module docstring.


def _check_nonce(claims: Mapping[str, object], *, now: float, nonces: WindowedHmac | None,
                 nonce_required: bool) -> OAuthError | None:
    if nonces is None:
        if nonce_required:
            return errors.server_error("dpop.nonce_unconfigured", "The server is misconfigured.",
                                       "dpop.nonce_required without dpop.nonce_secret_file")
        # A nonce the sidecar did not issue (e.g. the upstream's own) is the upstream's affair.
        return None
    if "nonce" not in claims:
        if nonce_required:
            return errors.use_dpop_nonce(
                "dpop.nonce_missing", "Authorization server requires nonce in DPoP proof."
            ).with_headers((NONCE_HEADER, nonces.issue(now)))
        return None
    if not nonces.verify(claims["nonce"], now):
        # §8: an invalid or expired nonce is answered like a missing one, with a fresh one.
        return errors.use_dpop_nonce(
            "dpop.nonce_invalid", "The DPoP proof nonce is invalid or has expired."
        ).with_headers((NONCE_HEADER, nonces.issue(now)))
    return None


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
    access_token: str | None = None,
) -> DpopProof | OAuthError:
    """Check the `DPoP` header values of one request against RFC 9449 §4.3.

    `htu_targets` (normalised, see `normalize_htu_targets`) replaces the policy's targets,
    for an endpoint other than the token endpoint (PAR, §10.1, or a protected resource).
    `access_token` is given by a resource server (§7): the proof must then carry its hash
    in `ath` (§4.3 step 12), and `dpop.reject_ath` does not apply. Never raises.
    """
    try:
        ath = None if access_token is None else access_token_hash(access_token)
        return _validate(values, method=method, policy=policy, now=now, nonces=nonces,
                         nonce_required=nonce_required,
                         targets=policy.htu_targets if htu_targets is None else htu_targets,
                         ath=ath)
    except Exception as exc:  # a bug must still be a 400, never a 500 or a crash
        return _invalid("malformed", "The DPoP proof is malformed.",
                        f"unexpected {type(exc).__name__}")


def _validate(values: tuple[str, ...], *, method: str, policy: DpopPolicy, now: float,
              nonces: WindowedHmac | None, nonce_required: bool,
              targets: frozenset[str], ath: str | None) -> DpopProof | OAuthError:
    # §4.3 step 1: not more than one DPoP header (the caller decides when none is fine).
    if len(values) != 1:
        return _MULTIPLE if values else _MISSING
    proof = values[0]
    # §4.3 step 2: one well-formed JWT, in the JWS compact serialisation (§4.2).
    if not isinstance(proof, str):
        return _NOT_JWS
    signed = _signed_header(proof, policy)
    if isinstance(signed, OAuthError):
        return signed
    header, encoded_payload = signed
    claims = strict_json_object(encoded_payload)
    if claims is None:
        return _BAD_PAYLOAD
    error = _check_claims(claims, method=method, policy=policy, now=now, targets=targets,
                          ath=ath) \
        or _check_nonce(claims, now=now, nonces=nonces, nonce_required=nonce_required)
    if error is not None:
        return error
    jkt, jti, iat, nonce = header.key.thumbprint, claims["jti"], claims["iat"], claims.get("nonce")
    assert isinstance(jti, str) and isinstance(iat, int | float)  # _check_claims passed
    return DpopProof(jkt=jkt, jti=jti, iat=int(iat),
                     nonce=nonce if isinstance(nonce, str) else None,
                     replay_key=f"{jkt}:{jti}", replay_ttl_seconds=policy.replay_ttl_seconds)
