"""client_secret_jwt and private_key_jwt (sidecar.core.client_authentication.assertions;
OpenID Connect Core §9, RFC 7523 §3)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import jwt
import pytest
from authlib.oauth2.rfc7523 import client_secret_jwt_sign, private_key_jwt_sign
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import OctKey, RSAKey
from jwt.warnings import InsecureKeyLengthWarning

from sidecar.core.credentials import (
    ClientCredentials,
)
from sidecar.errors import OAuthError
from tests.core.client_authentication.support import (
    ENDPOINT,
    ISSUER,
    JWT_SECRET,
    NOW,
    SIGNER_URI,
    World,
    assertion,
    via_assertion,
)
from tests.support.keys import public_jwk


async def test_client_secret_jwt_signed_by_pyjwt_and_authlib(world: World) -> None:
    token = assertion(JWT_SECRET.encode("utf-8"), "hmac", "HS256")
    result = await world.ok(via_assertion(token, client_id="hmac"))
    assert (result.authenticated, result.method) == (True, "client_secret_jwt")
    by_authlib = client_secret_jwt_sign(OctKey.import_key(JWT_SECRET), "hmac", ISSUER,
                                        alg="HS384")
    world.clock.t = time.time()  # authlib signs with the real clock, not the test's
    assert (await world.ok(via_assertion(by_authlib))).method == "client_secret_jwt"


async def test_client_secret_jwt_replay_is_refused(world: World) -> None:
    token = assertion(JWT_SECRET.encode("utf-8"), "hmac", "HS256")
    await world.ok(via_assertion(token))
    error = await world.refused(via_assertion(token), "client.assertion_replayed")
    assert error.code == "invalid_client"


async def test_client_secret_jwt_wrong_secret_and_registered_alg(world: World) -> None:
    forged = assertion(b"another secret of the right length!!", "hmac", "HS256")
    await world.refused(via_assertion(forged), "client.assertion_signature")
    hs256 = assertion(JWT_SECRET.encode("utf-8"), "hmac512", "HS256")
    await world.refused(via_assertion(hs256), "client.assertion_alg")
    hs384 = assertion(JWT_SECRET.encode("utf-8"), "hmac512", "HS384")
    assert (await world.ok(via_assertion(hs384))).authenticated


async def test_client_secret_jwt_secret_too_short_for_the_alg(world: World) -> None:
    # JWT_SECRET is 48 bytes: enough for HS256 and HS384, not for HS512 (RFC 7518 §3.2).
    assert len(JWT_SECRET.encode("utf-8")) == 48
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        token = assertion(JWT_SECRET.encode("utf-8"), "hmac", "HS512")
    error = await world.refused(via_assertion(token), "client.assertion_alg")
    assert "too short" in error.detail


async def test_client_secret_jwt_hmac_algorithms_can_be_restricted(world: World) -> None:
    token = assertion(JWT_SECRET.encode("utf-8"), "hmac", "HS256")
    await world.refused(via_assertion(token), "client.assertion_alg",
                        assertion_algorithms=frozenset({"HS512", "ES256"}))


# ---------------------------------------------------------------------------------------
# private_key_jwt


async def test_private_key_jwt_es256_pyjwt(world: World) -> None:
    token = assertion(world.signer_key, headers={"kid": "k1"})
    result = await world.ok(via_assertion(token, client_id="signer"))
    assert (result.authenticated, result.method) == (True, "private_key_jwt")


@pytest.mark.parametrize("alg", ["RS256", "PS256", "RS512"])
async def test_private_key_jwt_rsa_signed_by_authlib(world: World, alg: str) -> None:
    pem = world.rsa_key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    token = private_key_jwt_sign(RSAKey.import_key(pem), "rsa", ISSUER, alg=alg,
                                 header={"kid": "r1"})
    world.clock.t = time.time()  # authlib signs with the real clock, not the test's
    assert (await world.ok(via_assertion(token))).method == "private_key_jwt"


async def test_private_key_jwt_without_kid_tries_the_matching_keys(world: World) -> None:
    assert (await world.ok(via_assertion(assertion(world.signer_key)))).authenticated


async def test_private_key_jwt_replay_is_refused(world: World) -> None:
    token = assertion(world.signer_key)
    await world.ok(via_assertion(token))
    await world.refused(via_assertion(token), "client.assertion_replayed")


async def test_jti_is_burned_last(world: World) -> None:
    jti = "same-jti"
    bad = assertion(world.signer_key, jti=jti, aud="https://elsewhere.example.com")
    await world.refused(via_assertion(bad), "client.assertion_audience")
    # The refused assertion did not use up its jti.
    assert (await world.ok(via_assertion(assertion(world.signer_key, jti=jti)))).authenticated
    # jtis are per client: another client may use the same value.
    other = assertion(JWT_SECRET.encode("utf-8"), "hmac", "HS256", jti=jti)
    assert (await world.ok(via_assertion(other))).authenticated


async def test_jti_is_remembered_until_exp(world: World) -> None:
    token = assertion(world.signer_key, exp=int(NOW) + 30)
    await world.ok(via_assertion(token))
    world.clock.t += 80  # still inside exp + leeway
    await world.refused(via_assertion(token), "client.assertion_replayed")
    world.clock.t += 20  # now past exp + leeway: refused as expired, not accepted
    await world.refused(via_assertion(token), "client.assertion_expired")


@pytest.mark.parametrize(("claims", "result_code"), [
    ({"aud": ENDPOINT}, "client.assertion_audience"),
    ({"aud": [ISSUER, ENDPOINT]}, "client.assertion_audience"),  # not the sole value
    ({"aud": "https://attacker.example"}, "client.assertion_audience"),
    ({"aud": None}, "client.assertion_audience"),
    ({"exp": None}, "client.assertion_missing_exp"),
    ({"exp": int(NOW) - 61}, "client.assertion_expired"),
    ({"exp": "tomorrow"}, "client.assertion_bad_time_claim"),
    ({"exp": int(NOW) + 7200}, "client.assertion_lifetime_too_long"),
    ({"nbf": int(NOW) + 61}, "client.assertion_not_yet_valid"),
    ({"iat": int(NOW) + 61, "exp": int(NOW) + 120}, "client.assertion_issued_in_future"),
    ({"jti": None}, "client.assertion_jti"),
    ({"jti": ""}, "client.assertion_jti"),
    ({"jti": "x" * 257}, "client.assertion_jti"),
    ({"jti": 42}, "client.assertion_jti"),
])
async def test_private_key_jwt_claims(world: World, claims: dict[str, Any],
                                      result_code: str) -> None:
    await world.refused(via_assertion(assertion(world.signer_key, **claims)), result_code)


@pytest.mark.parametrize("claims", [
    {"aud": [ISSUER]},  # a one-member array is allowed (rfc7523bis change log -03)
    {"exp": int(NOW) - 30},  # expired, within the leeway
    {"nbf": int(NOW) + 30},
    {"iat": int(NOW) + 30, "exp": int(NOW) + 90},
    {"iat": None},  # iat is optional (RFC 7523 §3 item 6)
    {"iat": int(NOW), "exp": int(NOW) + 3600},  # Authlib's default lifetime
])
async def test_private_key_jwt_claims_within_leeway(world: World, claims: dict[str, Any]) -> None:
    assert (await world.ok(via_assertion(assertion(world.signer_key, **claims)))).authenticated


async def test_leeway_and_lifetime_are_policy(world: World) -> None:
    token = assertion(world.signer_key, exp=int(NOW) - 30)
    await world.refused(via_assertion(token), "client.assertion_expired", leeway_seconds=0)
    long_lived = assertion(world.signer_key, exp=int(NOW) + 600)
    await world.refused(via_assertion(long_lived), "client.assertion_lifetime_too_long",
                        max_assertion_lifetime_seconds=300)


async def test_token_endpoint_audience_for_older_clients(world: World) -> None:
    for aud in (ENDPOINT, [ENDPOINT, "https://other.example"], ISSUER):
        token = assertion(world.signer_key, aud=aud)
        assert (await world.ok(via_assertion(token),
                               assertion_audiences="issuer_or_endpoint")).authenticated
    token = assertion(world.signer_key, aud="https://other.example")
    await world.refused(via_assertion(token), "client.assertion_audience",
                        assertion_audiences="issuer_or_endpoint")


async def test_iss_and_sub_must_be_the_client_id(world: World) -> None:
    # Extraction already refuses iss != sub; authenticate checks against the registered id.
    token = assertion(world.signer_key, iss="signer", sub="rsa")
    await world.refused(ClientCredentials("signer", "private_key_jwt", assertion=token),
                        "client.assertion_subject")
    token = assertion(world.signer_key, iss="rsa", sub="rsa")
    await world.refused(ClientCredentials("signer", "private_key_jwt", assertion=token),
                        "client.assertion_subject")
    mismatch = via_assertion(assertion(world.signer_key), client_id="rsa")
    assert isinstance(mismatch, OAuthError) and mismatch.result_code == "client.client_id_mismatch"


async def test_alg_none_is_refused(world: World) -> None:
    unsigned = jwt.encode({"iss": "signer", "sub": "signer", "aud": ISSUER,
                           "exp": int(NOW) + 60, "jti": "n"}, "", algorithm="none")  # "": no key
    await world.refused(ClientCredentials("signer", "private_key_jwt", assertion=unsigned + "AA"),
                        "client.assertion_alg")
    # With an empty signature it is not even a JWS we parse.
    await world.refused(ClientCredentials("signer", "private_key_jwt", assertion=unsigned),
                        "client.malformed_assertion")


async def test_alg_not_registered_for_the_client(world: World) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = assertion(p384, "es256-only", "ES384")
    await world.refused(via_assertion(token), "client.assertion_alg")
    good = assertion(world.signer_key, "es256-only", "ES256")
    assert (await world.ok(via_assertion(good))).authenticated


async def test_allow_list_applies_without_a_registered_alg(world: World) -> None:
    token = assertion(world.signer_key)
    await world.refused(via_assertion(token), "client.assertion_alg",
                        assertion_algorithms=frozenset({"RS256"}))


async def test_signed_by_another_key_or_unknown_kid(world: World) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    await world.refused(via_assertion(assertion(stranger, headers={"kid": "k1"})),
                        "client.assertion_signature")
    await world.refused(via_assertion(assertion(world.signer_key, headers={"kid": "k9"})),
                        "client.assertion_unknown_key")
    await world.refused(via_assertion(assertion(world.rsa_key, "signer", "RS256")),
                        "client.assertion_unknown_key")


@pytest.mark.parametrize(("headers", "result_code"), [
    ({"typ": "dpop+jwt"}, "client.assertion_typ"),
    ({"typ": "at+jwt"}, "client.assertion_typ"),
    ({"typ": 5}, "client.assertion_typ"),
    ({"crit": ["exp"], "exp": 1}, "client.assertion_crit"),
])
async def test_header_checks(world: World, headers: dict[str, Any], result_code: str) -> None:
    await world.refused(via_assertion(assertion(world.signer_key, headers=headers)), result_code)


@pytest.mark.parametrize("typ", ["JWT", "client-authentication+jwt",
                                 "application/client-authentication+jwt"])
async def test_client_assertion_types_are_accepted(world: World, typ: str) -> None:
    token = assertion(world.signer_key, headers={"typ": typ})
    assert (await world.ok(via_assertion(token))).authenticated


async def test_malformed_assertion(world: World) -> None:
    await world.refused(ClientCredentials("signer", "private_key_jwt", assertion="a.b.c"),
                        "client.malformed_assertion")


async def test_jwks_uri_key_rotation_is_followed(world: World) -> None:
    assert (await world.ok(via_assertion(assertion(world.signer_key, "remote",
                                                   headers={"kid": "k1"})))).authenticated
    new_key = ec.generate_private_key(ec.SECP256R1())
    world.fetcher.documents[SIGNER_URI] = {"keys": [public_jwk(new_key, kid="k2")]}
    token = assertion(new_key, "remote", headers={"kid": "k2"})
    # Within a minute of the last fetch, the new kid is unknown and no fetch is made...
    world.clock.t += 10
    await world.refused(via_assertion(token), "client.assertion_unknown_key")
    assert world.fetcher.calls == 1
    # ...after it, the set is fetched again and the new key works, without a restart.
    world.clock.t += 51
    later = assertion(new_key, "remote", headers={"kid": "k2"}, iat=int(world.clock.t),
                      exp=int(world.clock.t) + 60)
    assert (await world.ok(via_assertion(later))).authenticated
    assert world.fetcher.calls == 2


async def test_jwks_uri_unavailable(world: World) -> None:
    del world.fetcher.documents[SIGNER_URI]
    error = await world.refused(via_assertion(assertion(world.signer_key, "remote")),
                                "client.jwks_unavailable")
    assert "404" in error.detail and "404" not in error.description
