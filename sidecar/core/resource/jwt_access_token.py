"""JWT access tokens (RFC 9068) verified by the resource side: their `cnf` is the binding.

Three answers, kept apart because the check acts on them differently:
- None: the token is not a JWS at all (an opaque token); the next source is asked;
- a `JwtRefusal`: a JWT that fails (wrong type, issuer, algorithm, signature, times, claims);
  the check refuses it as `invalid_token` (RFC 6750 §3.1) and asks no other source - an
  introspection endpoint must not get a second chance to vouch for a forged JWT;
- `TokenFacts(source="jwt")`: verified, with `cnf.jkt` / `cnf["x5t#S256"]` and who it is for.

In two steps, because the key set is fetched in between: `read_access_token` (the header and
`iss`, so that a token from another issuer, or with `alg: none`, costs no key fetch), then
`verify_access_token` with the keys the set selects for the header's `alg` and `kid`.
`jwt_access_token_facts` runs both for a key set already at hand.

The type (RFC 9068 §4 step 1): `typ` must be `at+jwt` (or `application/at+jwt`, compared
case-insensitively, RFC 7515 §4.1.9). Many servers issue JWT access tokens typed `JWT` or not
at all (Keycloak, Auth0, Hydra): `AccessTokenRules.accept_plain_jwt` lets those through, and
only those: a JWT explicitly typed as something else (`dpop+jwt`, a client attestation) is
never an access token (RFC 8725 §3.11). Off by default, as RFC 9068 says. An ID token is typed
`JWT` or not at all too: with `accept_plain_jwt`, set `audiences`, so that its `aud` (the
client, not this resource) tells it apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from sidecar.core.jose.claims import TimeFailure, TimeRules, audience_matches, check_times
from sidecar.core.jose.compact import (
    CompactJws,
    parse_compact_jws,
    split_compact,
    strict_json_object,
)
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    JwkEntry,
    select_keys,
    verify_signature,
)
from sidecar.core.resource.confirmation import ClaimsFailure, facts_from_claims
from sidecar.core.resource.token_facts import TokenFacts

HeaderFailure = Literal["unsigned", "bad_typ", "bad_header", "bad_alg", "wrong_issuer"]
KeyFailure = Literal["unknown_key", "bad_signature", "bad_audience"]
JwtFailure = HeaderFailure | KeyFailure | TimeFailure | ClaimsFailure

AT_JWT: Final = "at+jwt"  # RFC 9068 §2.1
PLAIN_TYPES: Final = frozenset({"jwt"})  # RFC 7519 §5.1, when accept_plain_jwt

_MESSAGES: Final[Mapping[str, str]] = {
    "unsigned": "The access token is an unsecured JWT.",
    "bad_typ": "The access token is not typed at+jwt.",
    "bad_header": "The access token header is not acceptable.",
    "bad_alg": "The access token alg is not allowed.",
    "wrong_issuer": "The access token was not issued by the expected issuer.",
    "unknown_key": "No key of the issuer matches the access token.",
    "bad_signature": "The access token signature is invalid.",
    "bad_audience": "The access token is not meant for this resource.",
    "missing_exp": "The access token has no exp claim.",
    "bad_time_claim": "The access token exp, nbf or iat is not a number.",
    "expired": "The access token has expired.",
    "not_yet_valid": "The access token is not valid yet.",
    "issued_in_future": "The access token iat is in the future.",
    "lifetime_too_long": "The access token lifetime is too long.",
    "bad_cnf": "The access token cnf claim is malformed.",
    "unsupported_cnf": "The access token is bound by a confirmation method not supported.",
    "bad_claim": "A claim of the access token has the wrong type.",
}


@dataclass(frozen=True, slots=True)
class AccessTokenRules:
    """What a JWT access token must satisfy (RFC 9068 §4)."""

    issuer: str  # compared exactly (RFC 9068 §4 step 3, RFC 8414 §3.3)
    algorithms: frozenset[str] = field(default_factory=lambda: frozenset(ASYMMETRIC_ALGORITHMS))
    leeway_seconds: float = 60.0
    accept_plain_jwt: bool = False  # typ "JWT" or no typ; see the module docstring
    audiences: frozenset[str] = frozenset()  # RFC 9068 §4 step 4; empty: `aud` not checked

    def __post_init__(self) -> None:
        # RFC 8725 §3.1-3.2: never `none`, never an HMAC algorithm keyed with a public key.
        unknown = self.algorithms - ASYMMETRIC_ALGORITHMS.keys()
        if unknown:
            raise ValueError(f"not asymmetric JWS algorithms: {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class JwtRefusal:
    """Why a JWT access token is refused: `reason` is stable (result code `jwt.<reason>`),
    `message` may be sent as `error_description`, `detail` is for logs only."""

    reason: JwtFailure
    detail: str = ""

    @property
    def message(self) -> str:
        return _MESSAGES[self.reason]


def read_access_token(token: str, rules: AccessTokenRules) -> CompactJws | JwtRefusal | None:
    """The parsed JWS when its header and issuer are acceptable; None when the token is not
    a JWS (opaque); a refusal for a JWT that is not an acceptable access token."""
    jws = parse_compact_jws(token)
    if jws is None:
        return _unsecured(token)
    refusal = _header_refusal(jws.header, rules)
    if refusal is not None:
        return refusal
    if jws.claims.get("iss") != rules.issuer:
        return JwtRefusal("wrong_issuer", f"iss {str(jws.claims.get('iss'))[:100]!r}")
    return jws


def verify_access_token(jws: CompactJws, keys: Sequence[JwkEntry], rules: AccessTokenRules,
                        now: float) -> TokenFacts | JwtRefusal:
    """RFC 9068 §4 steps 5-8 for a token `read_access_token` accepted: the signature with
    one of `keys` (the issuer's set), the audience, the times; then its facts."""
    alg = jws.alg
    assert alg is not None  # read_access_token checked it
    candidates = select_keys(keys, alg, jws.kid)
    if not candidates:
        return JwtRefusal("unknown_key", f"alg {alg}, kid {jws.kid!r}, {len(keys)} keys")
    if not verify_signature(jws, alg, candidates):
        return JwtRefusal("bad_signature", f"kid {jws.kid!r}, {len(candidates)} keys")
    if rules.audiences and not audience_matches(jws.claims.get("aud"), rules.audiences,
                                                sole=False):
        return JwtRefusal("bad_audience")
    # No lifetime bound: access tokens live as long as their issuer says.
    failed = check_times(jws.claims, now, TimeRules(rules.leeway_seconds, math.inf))
    if failed is not None:
        return JwtRefusal(failed)
    facts = facts_from_claims(jws.claims, "jwt")
    return JwtRefusal(facts) if isinstance(facts, str) else facts


def jwt_access_token_facts(token: str, keys: Sequence[JwkEntry], rules: AccessTokenRules,
                           now: float) -> TokenFacts | JwtRefusal | None:
    """Both steps with a key set at hand."""
    read = read_access_token(token, rules)
    if not isinstance(read, CompactJws):
        return read
    return verify_access_token(read, keys, rules, now)


def _unsecured(token: str) -> JwtRefusal | None:
    """RFC 7519 §6: `header.payload.` whose header is JSON naming an `alg` is an unsecured
    JWT - refused by name, not read as an opaque token that might be introspected."""
    segments = split_compact(token, allow_unsigned=True)
    if segments is None or segments[2]:
        return None
    header = strict_json_object(segments[0])
    return JwtRefusal("unsigned") if header is not None and "alg" in header else None


def _header_refusal(header: Mapping[str, object], rules: AccessTokenRules) -> JwtRefusal | None:
    typ = header.get("typ")
    if not _acceptable_type(typ, rules.accept_plain_jwt):
        return JwtRefusal("bad_typ", f"typ {str(typ)[:50]!r}")
    # RFC 7515 §4.1.11: no extension is understood here, so none may be critical.
    if "crit" in header:
        return JwtRefusal("bad_header", "crit")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in rules.algorithms:
        return JwtRefusal("bad_alg", f"alg {str(alg)[:20]!r}")
    return None


def _acceptable_type(typ: object, accept_plain_jwt: bool) -> bool:
    if typ is None:
        return accept_plain_jwt
    if not isinstance(typ, str):
        return False
    media_type = typ.lower().removeprefix("application/")
    return media_type == AT_JWT or (accept_plain_jwt and media_type in PLAIN_TYPES)
