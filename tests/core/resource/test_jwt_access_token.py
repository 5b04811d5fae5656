"""JWT access tokens verified on the resource side (sidecar.core.resource.jwt_access_token;
RFC 9068 §4), signed by pyjwt as an authorization server signs them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import RSAAlgorithm

from sidecar.core.jose.key_sets import JwkEntry, parse_jwks
from sidecar.core.resource.jwt_access_token import (
    AccessTokenRules,
    JwtRefusal,
    jwt_access_token_facts,
    read_access_token,
)
from sidecar.core.resource.token_facts import TokenFacts
from tests.support.jwt_as import ISSUER, JwtAccessTokenServer

NOW = float(int(time.time()))
AS = JwtAccessTokenServer(clock=lambda: NOW)  # tokens issued at the time they are checked at
KEYS = parse_jwks(AS.jwks, strict=True)
RULES = AccessTokenRules(issuer=ISSUER)
JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # RFC 7638 §3.1's example thumbprint
X5T = "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"  # RFC 8705 §3.1's example thumbprint


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return ".".join(b64(json.dumps(part).encode()) for part in (header, claims))


def hmac_with_public_key() -> str:
    """RFC 8725 §2.1's algorithm confusion: HS256 keyed with the issuer's public key."""
    public = AS.key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    head = segments({"alg": "HS256", "typ": "at+jwt", "kid": AS.kid}, AS.claims())
    return f"{head}.{b64(hmac.new(public, head.encode(), hashlib.sha256).digest())}"


def other_key_token() -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(AS.claims(), other, algorithm="ES256",
                      headers={"typ": "at+jwt", "kid": AS.kid})


def tampered() -> str:
    header, _, signature = AS.token().split(".")
    return f"{header}.{b64(json.dumps(AS.claims(sub='mallory')).encode())}.{signature}"


@dataclass(frozen=True)
class Case:
    name: str
    token: Callable[[], str]
    expected: str | None  # the refusal reason; None: not a JWT
    rules: AccessTokenRules = RULES


REFUSED = [
    Case("wrong issuer", lambda: AS.token(iss="https://evil.example.com"), "wrong_issuer"),
    Case("issuer with a trailing slash", lambda: AS.token(iss=ISSUER + "/"), "wrong_issuer"),
    Case("no issuer", lambda: AS.token(remove=("iss",)), "wrong_issuer"),
    Case("expired", lambda: AS.token(exp=int(NOW) - 120), "expired"),
    Case("missing exp", lambda: AS.token(remove=("exp",)), "missing_exp"),
    Case("exp a string", lambda: AS.token(exp=str(int(NOW) + 60)), "bad_time_claim"),
    Case("nbf in the future", lambda: AS.token(nbf=int(NOW) + 600), "not_yet_valid"),
    Case("iat in the future", lambda: AS.token(iat=int(NOW) + 600), "issued_in_future"),
    Case("signed by another key", other_key_token, "bad_signature"),
    Case("claims changed after signing", tampered, "bad_signature"),
    Case("unknown kid", lambda: AS.token(headers={"kid": "nope"}), "unknown_key"),
    Case("alg none, empty signature",
         lambda: segments({"alg": "none", "typ": "at+jwt"}, AS.claims()) + ".", "unsigned"),
    Case("alg none, a signature",
         lambda: segments({"alg": "none", "typ": "at+jwt"}, AS.claims()) + ".c2ln", "bad_alg"),
    Case("HMAC with the public key", hmac_with_public_key, "bad_alg"),
    Case("alg not allowed", AS.token, "bad_alg",
         AccessTokenRules(issuer=ISSUER, algorithms=frozenset({"RS256"}))),
    Case("typ JWT, strict", lambda: AS.token(typ="JWT"), "bad_typ"),
    Case("no typ, strict", lambda: AS.token(typ=None), "bad_typ"),
    Case("typ dpop+jwt", lambda: AS.token(typ="dpop+jwt"), "bad_typ"),
    Case("typ dpop+jwt, plain accepted", lambda: AS.token(typ="dpop+jwt"), "bad_typ",
         replace(RULES, accept_plain_jwt=True)),
    Case("crit header", lambda: AS.token(headers={"crit": ["exp"], "exp": 1}), "bad_header"),
    Case("wrong audience", lambda: AS.token(aud="https://other.example.com"), "bad_audience",
         replace(RULES, audiences=frozenset({"https://api.example.com/"}))),
    Case("cnf a string", lambda: AS.token(cnf=JKT), "bad_cnf"),
    Case("cnf.jkt a number", lambda: AS.token(cnf={"jkt": 1}), "bad_cnf"),
    Case("cnf.jkt not a SHA-256", lambda: AS.token(cnf={"jkt": "abc"}), "bad_cnf"),
    Case("cnf.x5t#S256 padded", lambda: AS.token(cnf={"x5t#S256": X5T + "="}), "bad_cnf"),
    Case("cnf.jwk only", lambda: AS.token(cnf={"jwk": {"kty": "EC"}}), "unsupported_cnf"),
    # A method nobody listed is no more "unbound" than a listed one (RFC 7800 §3.1).
    Case("cnf.x5t#S512 only", lambda: AS.token(cnf={"x5t#S512": "A" * 86}), "unsupported_cnf"),
    Case("an exp no float can hold", lambda: AS.token(exp=10**400), "bad_time_claim"),
    Case("sub a number", lambda: AS.token(sub=42), "bad_claim"),
    Case("scope an array", lambda: AS.token(scope=["read"]), "bad_claim"),
    Case("client_id with a newline", lambda: AS.token(client_id="app\r\nX-Evil: 1"),
         "bad_claim"),
]

NOT_A_JWT = [
    Case("opaque", lambda: "2YotnFZFEjr1zCsicMWpAA", None),
    Case("opaque with dots", lambda: "abc.def.ghi", None),
    Case("two segments", lambda: AS.token().rsplit(".", 1)[0], None),
    Case("empty", lambda: "", None),
]


@pytest.mark.parametrize("case", REFUSED + NOT_A_JWT, ids=lambda c: c.name)
def test_refused_or_not_a_jwt(case: Case) -> None:
    result = jwt_access_token_facts(case.token(), KEYS, case.rules, NOW)
    if case.expected is None:
        assert result is None
    else:
        assert isinstance(result, JwtRefusal), result
        assert result.reason == case.expected
        assert result.message  # a sentence for error_description, never the token


def test_a_good_token_gives_its_facts() -> None:
    token = AS.token(cnf={"jkt": JKT}, scope="read write", sub="alice", client_id="app",
                     exp=int(NOW) + 300)
    facts = jwt_access_token_facts(token, KEYS, RULES, NOW)
    assert facts == TokenFacts(source="jwt", jkt=JKT, client_id="app", subject="alice",
                               scope="read write", expires_at=int(NOW) + 300)
    assert facts.is_bound


@pytest.mark.parametrize(("cnf", "jkt", "x5t"), [
    (None, None, None),
    ({}, None, None),
    ({"jkt": JKT}, JKT, None),
    ({"x5t#S256": X5T}, None, X5T),
    ({"jkt": JKT, "x5t#S256": X5T}, JKT, X5T),
    ({"jkt": JKT, "kid": "k"}, JKT, None),  # understood members win over the others
], ids=["no cnf", "empty cnf", "jkt", "x5t#S256", "both", "jkt and kid"])
def test_cnf_shapes(cnf: dict[str, Any] | None, jkt: str | None, x5t: str | None) -> None:
    extra: dict[str, Any] = {} if cnf is None else {"cnf": cnf}
    token = AS.token(**extra)
    facts = jwt_access_token_facts(token, KEYS, RULES, NOW)
    assert isinstance(facts, TokenFacts)
    assert (facts.jkt, facts.x5t_s256, facts.is_bound) == (jkt, x5t, jkt is not None or
                                                            x5t is not None)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT",
                                 "Application/At+Jwt"])
def test_the_at_jwt_type_in_each_spelling(typ: str) -> None:
    assert isinstance(jwt_access_token_facts(AS.token(typ=typ), KEYS, RULES, NOW), TokenFacts)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "application/jwt", None])
def test_plain_jwt_when_configured(typ: str | None) -> None:
    rules = replace(RULES, accept_plain_jwt=True)
    assert isinstance(jwt_access_token_facts(AS.token(typ=typ), KEYS, rules, NOW), TokenFacts)


def test_leeway_on_exp() -> None:
    token = AS.token(exp=int(NOW) - 30)
    assert isinstance(jwt_access_token_facts(token, KEYS, RULES, NOW), TokenFacts)
    strict = replace(RULES, leeway_seconds=0)
    refused = jwt_access_token_facts(token, KEYS, strict, NOW)
    assert isinstance(refused, JwtRefusal) and refused.reason == "expired"


def test_audience_among_several() -> None:
    rules = replace(RULES, audiences=frozenset({"https://api.example.com"}))
    token = AS.token(aud=["https://other.example.com", "https://api.example.com"])
    assert isinstance(jwt_access_token_facts(token, KEYS, rules, NOW), TokenFacts)


def test_rsa_keys_and_the_key_alg() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "r", "alg": "PS256"}
    keys: tuple[JwkEntry, ...] = parse_jwks({"keys": [jwk]}, strict=True)
    claims = AS.claims()
    good = jwt.encode(claims, key, algorithm="PS256", headers={"typ": "at+jwt", "kid": "r"})
    assert isinstance(jwt_access_token_facts(good, keys, RULES, NOW), TokenFacts)
    # The key says PS256: a token signed with it under RS256 matches no key.
    other_alg = jwt.encode(claims, key, algorithm="RS256", headers={"typ": "at+jwt", "kid": "r"})
    refused = jwt_access_token_facts(other_alg, keys, RULES, NOW)
    assert isinstance(refused, JwtRefusal) and refused.reason == "unknown_key"


def test_the_issuer_is_checked_before_any_key_is_needed() -> None:
    """A token of another issuer is refused by `read_access_token`, before keys are fetched."""
    refused = read_access_token(AS.token(iss="https://evil.example.com"), RULES)
    assert isinstance(refused, JwtRefusal) and refused.reason == "wrong_issuer"
    assert "evil" in refused.detail


def test_only_asymmetric_algorithms_may_be_configured() -> None:
    for alg in ("none", "HS256"):
        with pytest.raises(ValueError, match="not asymmetric"):
            AccessTokenRules(issuer=ISSUER, algorithms=frozenset({alg}))


def test_the_refusal_never_holds_the_token() -> None:
    token = AS.token(exp=int(NOW) - 3600)
    refused = jwt_access_token_facts(token, KEYS, RULES, NOW)
    assert isinstance(refused, JwtRefusal)
    assert token not in repr(refused) and token.split(".")[2] not in refused.detail
