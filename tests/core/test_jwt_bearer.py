"""The JWT bearer grant with trusted issuers (sidecar.core.jwt_bearer; RFC 7523 §2.1, §3)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
from authlib.oauth2.rfc7523.assertion import sign_jwt_bearer_assertion
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import RSAKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.jwks import CachingJwksSource, StaticJwksSource
from sidecar.adapters.memory import MemoryStore
from sidecar.core.jwt_bearer import (
    JwtBearerAssertion,
    JwtBearerPolicy,
    TrustedIssuer,
    load_issuers,
    verify_jwt_bearer,
)
from sidecar.errors import OAuthError
from sidecar.settings import ConfigError, settings_from_mapping
from tests.support.fakes import FakeClock, ScriptedFetcher
from tests.support.pipeline import burn_last, pipeline_env, pipeline_settings

AS_ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"
IDP = "https://idp.example.com"
REMOTE_IDP = "https://remote-idp.example.com"
REMOTE_URI = "https://remote-idp.example.com/jwks"
NOW = float(int(time.time()))
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, **extra: Any) -> dict[str, Any]:
    algorithm = ECAlgorithm if isinstance(key, ec.EllipticCurvePrivateKey) else RSAAlgorithm
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, **extra}


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.remote_key = ec.generate_private_key(ec.SECP256R1())
        self.clock = FakeClock(NOW)
        self.store = MemoryStore(1000, "t:", self.clock)
        self.fetcher = ScriptedFetcher()
        self.fetcher.documents[REMOTE_URI] = {"keys": [public_jwk(self.remote_key, kid="r1")]}
        self.jwks = CachingJwksSource(self.fetcher, self.clock)
        (tmp_path / "rsa.json").write_text(json.dumps({"keys": [public_jwk(RSA_KEY)]}))
        issuers = load_issuers([
            {"issuer": IDP, "jwks": {"keys": [public_jwk(self.key, kid="k1")]}},
            {"issuer": "https://rsa-idp.example.com", "jwks_file": "rsa.json",
             "algorithms": ["RS256"], "require_jti": False},
            {"issuer": REMOTE_IDP, "jwks_uri": REMOTE_URI},
        ], tmp_path, LOCAL_FILES)
        self.policy = JwtBearerPolicy(issuers={i.issuer: i for i in issuers},
                                      audiences=frozenset({AS_ISSUER, ENDPOINT}))

    async def verify(self, assertion: str | None,
                     policy: JwtBearerPolicy | None = None) -> JwtBearerAssertion | OAuthError:
        result = await verify_jwt_bearer(assertion, policy=policy or self.policy,
                                         now=self.clock.now(), jwks=self.jwks)
        if isinstance(result, OAuthError) or result.replay is None:
            return result
        # As in production: the jti is burned by the pipeline's last step.
        env = pipeline_env(pipeline_settings(), clock=self.clock, store=self.store)
        return await burn_last(env, result.replay) or result

    async def ok(self, assertion: str) -> JwtBearerAssertion:
        result = await self.verify(assertion)
        assert isinstance(result, JwtBearerAssertion), result
        return result

    async def refused(self, assertion: str | None, result_code: str) -> OAuthError:
        result = await self.verify(assertion)
        assert isinstance(result, OAuthError), result
        assert (result.code, result.result_code) == ("invalid_grant", result_code), result
        return result


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def grant(key: Any, alg: str = "ES256", *, headers: dict[str, Any] | None = None,
          **claims: Any) -> str:
    base: dict[str, Any] = {"iss": IDP, "sub": "alice@example.com", "aud": ENDPOINT,
                            "exp": int(NOW) + 300, "iat": int(NOW), "jti": uuid.uuid4().hex}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, key, algorithm=alg,
                      headers=headers)


async def test_verified_subject_is_forwarded(env: Env) -> None:
    result = await env.ok(grant(env.key, headers={"kid": "k1"}))
    assert (result.issuer, result.subject) == (IDP, "alice@example.com")
    assert result.context() == [("Subject", "alice@example.com")]


@pytest.mark.parametrize("aud", [AS_ISSUER, ENDPOINT, [ENDPOINT, "https://other"], [AS_ISSUER]])
async def test_audience_is_the_issuer_or_the_token_endpoint(env: Env, aud: object) -> None:
    assert (await env.ok(grant(env.key, aud=aud))).subject


async def test_authlib_assertion_without_jti_for_an_issuer_that_allows_it(env: Env) -> None:
    pem = RSA_KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    token = sign_jwt_bearer_assertion(RSAKey.import_key(pem), "https://rsa-idp.example.com",
                                      AS_ISSUER, subject="svc-1", alg="RS256",
                                      claims={"jti": "j-1"}, expires_in=300)
    env.clock.t = time.time()  # authlib signs with the real clock, not the test's
    assert (await env.ok(token)).subject == "svc-1"
    env.clock.t = NOW
    without_jti = jwt.encode({"iss": "https://rsa-idp.example.com", "sub": "svc-2",
                              "aud": AS_ISSUER, "exp": int(NOW) + 60}, RSA_KEY, algorithm="RS256")
    result = await env.ok(without_jti)
    assert (result.subject, result.jti) == ("svc-2", None)


async def test_replay_is_refused(env: Env) -> None:
    token = grant(env.key)
    await env.ok(token)
    await env.refused(token, "jwt_bearer.jti_replayed")


async def test_jti_is_burned_last(env: Env) -> None:
    await env.refused(grant(env.key, jti="j", aud="https://elsewhere"), "jwt_bearer.bad_audience")
    assert (await env.ok(grant(env.key, jti="j"))).jti == "j"


@pytest.mark.parametrize(("token_args", "result_code"), [
    ({"iss": "https://untrusted.example"}, "jwt_bearer.untrusted_issuer"),
    ({"iss": None}, "jwt_bearer.untrusted_issuer"),
    ({"aud": "https://other.example"}, "jwt_bearer.bad_audience"),
    ({"aud": None}, "jwt_bearer.bad_audience"),
    ({"sub": None}, "jwt_bearer.bad_subject"),
    ({"sub": "alice\r\nX-Token-Subject: admin"}, "jwt_bearer.bad_subject"),
    ({"sub": "ålice"}, "jwt_bearer.bad_subject"),
    ({"exp": None}, "jwt_bearer.missing_exp"),
    ({"exp": int(NOW) - 61}, "jwt_bearer.expired"),
    ({"exp": int(NOW) + 7200}, "jwt_bearer.lifetime_too_long"),
    ({"nbf": int(NOW) + 120}, "jwt_bearer.not_yet_valid"),
    ({"iat": int(NOW) + 120}, "jwt_bearer.issued_in_future"),
    ({"jti": None}, "jwt_bearer.missing_jti"),
    ({"jti": ""}, "jwt_bearer.bad_jti"),
    ({"jti": 5}, "jwt_bearer.bad_jti"),
])
async def test_claims(env: Env, token_args: dict[str, Any], result_code: str) -> None:
    await env.refused(grant(env.key, **token_args), result_code)


async def test_signature_and_algorithms(env: Env) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    await env.refused(grant(stranger), "jwt_bearer.bad_signature")
    await env.refused(grant(env.key, headers={"kid": "nope"}), "jwt_bearer.bad_signature")
    await env.refused(grant(b"a shared secret of sufficient length!!", "HS256"),
                      "jwt_bearer.bad_alg")
    unsigned = jwt.encode({"iss": IDP, "sub": "a", "aud": ENDPOINT, "exp": int(NOW) + 60},
                          "", algorithm="none")  # "": PyJWT's "no key"
    await env.refused(unsigned + "AAAA", "jwt_bearer.bad_alg")
    await env.refused(unsigned, "jwt_bearer.malformed")
    # The RSA issuer allows RS256 only.
    ps256 = jwt.encode({"iss": "https://rsa-idp.example.com", "sub": "a", "aud": ENDPOINT,
                        "exp": int(NOW) + 60}, RSA_KEY, algorithm="PS256")
    await env.refused(ps256, "jwt_bearer.bad_alg")


@pytest.mark.parametrize("headers", [{"typ": "dpop+jwt"}, {"typ": "client-authentication+jwt"},
                                     {"crit": ["x"], "x": 1}])
async def test_foreign_jwts_are_refused(env: Env, headers: dict[str, Any]) -> None:
    await env.refused(grant(env.key, headers=headers), "jwt_bearer.bad_header")


@pytest.mark.parametrize("assertion", [None, "", "not.a.jwt", "a.b"])
async def test_malformed(env: Env, assertion: str | None) -> None:
    await env.refused(assertion, "jwt_bearer.malformed")


async def test_jwks_uri_issuer_follows_rotation(env: Env) -> None:
    first = grant(env.remote_key, iss=REMOTE_IDP, headers={"kid": "r1"})
    assert (await env.ok(first)).issuer == REMOTE_IDP
    rotated = ec.generate_private_key(ec.SECP256R1())
    env.fetcher.documents[REMOTE_URI] = {"keys": [public_jwk(rotated, kid="r2")]}
    env.clock.t += 61
    token = grant(rotated, iss=REMOTE_IDP, headers={"kid": "r2"}, iat=int(env.clock.t),
                  exp=int(env.clock.t) + 60)
    assert (await env.ok(token)).issuer == REMOTE_IDP
    assert env.fetcher.calls == 2


async def test_jwks_uri_unavailable(env: Env) -> None:
    del env.fetcher.documents[REMOTE_URI]
    error = await env.refused(grant(env.remote_key, iss=REMOTE_IDP), "jwt_bearer.jwks_unavailable")
    assert "500" in error.detail


async def test_policy_from_settings(tmp_path: Path) -> None:
    settings = settings_from_mapping({"server": {"public_token_endpoint": ENDPOINT},
                                      "upstream": {"url": "http://127.0.0.1:9000"},
                                      "grants": {"jwt_bearer": {"leeway_seconds": 10}}}, {})
    issuer = TrustedIssuer(IDP, jwks=())
    policy = JwtBearerPolicy.from_settings(settings, (issuer,))
    assert policy.audiences == frozenset({AS_ISSUER, ENDPOINT})
    assert policy.issuers == {IDP: issuer} and policy.time_rules.leeway_seconds == 10
    result = await verify_jwt_bearer(grant(ec.generate_private_key(ec.SECP256R1())),
                                     policy=policy, now=NOW, jwks=StaticJwksSource())
    assert isinstance(result, OAuthError) and result.result_code == "jwt_bearer.bad_signature"


# ---------------------------------------------------------------------------------------
# Configuration


def test_load_issuers_reads_the_three_key_sources(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "k.json").write_text(json.dumps({"keys": [public_jwk(key)]}))
    issuers = load_issuers([
        {"issuer": "https://a", "jwks": json.dumps({"keys": [public_jwk(key)]})},
        {"issuer": "https://b", "jwks_file": str(tmp_path / "k.json")},
        {"issuer": "https://c", "jwks_uri": "https://c/jwks", "algorithms": ["ES256"],
         "require_jti": False},
    ], Path("/"), LOCAL_FILES)
    assert [i.issuer for i in issuers] == ["https://a", "https://b", "https://c"]
    assert issuers[0].require_jti and not issuers[2].require_jti
    assert issuers[2].algorithms == frozenset({"ES256"}) and issuers[2].jwks_uri
    assert load_issuers(None, tmp_path, LOCAL_FILES) == ()


def test_load_issuers_names_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_issuers([
            {"jwks_uri": "https://x/jwks"},
            {"issuer": "https://a", "jwks_uri": "https://a/jwks", "jwks_file": "k.json"},
            {"issuer": "https://b"},
            {"issuer": "https://c", "jwks_uri": "https://c/jwks", "algorithms": ["HS256"]},
            {"issuer": "https://d", "jwks_uri": "https://d/jwks", "colour": "red"},
            {"issuer": "https://d", "jwks_uri": "https://d/jwks"},
            {"issuer": "https://d", "jwks_uri": "https://d/jwks"},
            "not a table",
        ], tmp_path, LOCAL_FILES)
    found = info.value.problems
    expected = [
        "grants.jwt_bearer.issuers[0].issuer: required",
        "grants.jwt_bearer.issuers[1].jwks_uri: needs exactly one of",
        "grants.jwt_bearer.issuers[1].jwks_file: cannot read",
        "grants.jwt_bearer.issuers[2].jwks_uri: needs exactly one of",
        "grants.jwt_bearer.issuers[3].algorithms: unsupported ['HS256']",
        "grants.jwt_bearer.issuers[4].colour: unknown key",
        "grants.jwt_bearer.issuers[6].issuer: 'https://d' is listed twice",
        "grants.jwt_bearer.issuers[7]: expected a table",
    ]
    for message in expected:
        assert any(p.startswith(message) for p in found), (message, found)
    assert len(found) == len(expected), found
    with pytest.raises(ConfigError, match="expected an array of tables"):
        load_issuers({"issuer": "x"}, tmp_path, LOCAL_FILES)
