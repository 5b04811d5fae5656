"""Client authentication against the registry (sidecar.core.client_authentication): every method
succeeds and fails, with real keys, certificates, assertions (pyjwt and Authlib) and the real
MemoryStore, where the pipeline's last step burns assertion jtis (as in production).
RFC 6749 §2.3/§5.2, RFC 7523 §3, OpenID Connect Core §9, RFC 8705 §2."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import argon2
import jwt
import pytest
import trustme
from authlib.oauth2.rfc7523 import client_secret_jwt_sign, private_key_jwt_sign
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc.jwk import OctKey, RSAKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from sidecar.adapters.client_secrets import CachingSecretVerifier
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.adapters.memory import MemoryStore
from sidecar.core.client_authentication import (
    AuthenticatedClient,
    ClientAuthPolicy,
    authenticate,
    check_client_policy,
    context_headers,
    dpop_nonce_required,
)
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.clients.model import Registry
from sidecar.core.credentials import (
    JWT_BEARER_ASSERTION,
    ClientCredentials,
    extract_client_credentials,
)
from sidecar.core.mtls import ClientCertificate
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import settings_from_mapping
from tests.support.fakes import FakeClock, ScriptedFetcher
from tests.support.pipeline import burn_last, pipeline_env, pipeline_settings

ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"
NOW = float(int(time.time()))
# RFC 6749 §2.3.1 / Appendix B: "+", "%", ":" and non-ASCII survive the form encoding.
SECRET = "p+ss%20w:rd é ✓ &=;"
JWT_SECRET = "ünïcödé+%:an HMAC secret that is long enough"
JWKS_URI = "https://keys.example.com/device.jwks"
SIGNER_URI = "https://keys.example.com/signer.jwks"
FAST_ARGON2 = argon2.PasswordHasher(time_cost=5, memory_cost=7168, parallelism=1)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # slow: made once


def public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, **extra: Any) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    else:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, **extra}


# ---------------------------------------------------------------------------------------
# Certificates.

EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
FAR = datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)


@dataclass
class Issuer:
    """A CA made with trustme, able to issue exactly the leaf a test needs."""

    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())

    @property
    def key(self) -> Any:
        return serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)

    def issue(self, subject: str = "CN=client", sans: Sequence[x509.GeneralName] = (), *,
              eku: Sequence[x509.ObjectIdentifier] = (ExtendedKeyUsageOID.CLIENT_AUTH,),
              not_after: datetime.datetime = FAR) -> x509.Certificate:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name.from_rfc4514_string(subject))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)),
                                            critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        return builder.sign(self.key, hashes.SHA256())


def presented(leaf: x509.Certificate, *chain: x509.Certificate) -> ClientCertificate:
    der = serialization.Encoding.DER
    return ClientCertificate.from_der(leaf.public_bytes(der),
                                      tuple(c.public_bytes(der) for c in chain))


def self_signed(key: ec.EllipticCurvePrivateKey, cn: str = "device") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(EPOCH).not_valid_after(FAR).sign(key, hashes.SHA256()))


def x5c_jwk(key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate,
            **extra: Any) -> dict[str, Any]:
    der = certificate.public_bytes(serialization.Encoding.DER)
    return public_jwk(key, x5c=[base64.b64encode(der).decode()], **extra)


# ---------------------------------------------------------------------------------------
# The world of one test: a registry, the store, the key source, the verifier.


@dataclass
class World:
    registry: Registry
    clock: FakeClock
    store: MemoryStore
    fetcher: ScriptedFetcher
    jwks: CachingJwksSource
    secrets: CachingSecretVerifier
    signer_key: ec.EllipticCurvePrivateKey
    rsa_key: rsa.RSAPrivateKey
    pki: Issuer
    device_key: ec.EllipticCurvePrivateKey
    device_cert: x509.Certificate
    policy: ClientAuthPolicy = field(default_factory=lambda: ClientAuthPolicy(ISSUER, ENDPOINT))

    async def auth(self, credentials: ClientCredentials | OAuthError,
                   certificate: ClientCertificate | None = None,
                   **policy: Any) -> AuthenticatedClient | OAuthError:
        assert isinstance(credentials, ClientCredentials), credentials
        chosen = ClientAuthPolicy(ISSUER, ENDPOINT, **policy) if policy else self.policy
        result = await authenticate(credentials, certificate, self.registry, policy=chosen,
                                    now=self.clock.now(), jwks=self.jwks, secrets=self.secrets)
        if isinstance(result, OAuthError) or result.replay is None:
            return result
        # As in production: the assertion's jti is burned by the pipeline's last step.
        env = pipeline_env(pipeline_settings(), clock=self.clock, store=self.store)
        return await burn_last(env, result.replay) or result

    async def ok(self, credentials: ClientCredentials | OAuthError,
                 certificate: ClientCertificate | None = None,
                 **policy: Any) -> AuthenticatedClient:
        result = await self.auth(credentials, certificate, **policy)
        assert isinstance(result, AuthenticatedClient), result
        return result

    async def refused(self, credentials: ClientCredentials | OAuthError, result_code: str,
                      certificate: ClientCertificate | None = None, **policy: Any) -> OAuthError:
        result = await self.auth(credentials, certificate, **policy)
        assert isinstance(result, OAuthError), result
        assert result.result_code == result_code, result
        # RFC 6749 §5.2; and never a secret in what is sent or logged.
        if result.code == "invalid_client":
            assert result.status == 401
        for text in (result.description, result.detail):
            assert SECRET not in text and JWT_SECRET not in text
        return result


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "shared.secret").write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "jwt.secret").write_text(JWT_SECRET, encoding="utf-8")
    signer_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = RSA_KEY
    (tmp_path / "rsa.json").write_text(json.dumps({"keys": [public_jwk(rsa_key, kid="r1")]}))
    pki = Issuer()
    pki.ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    device_key = ec.generate_private_key(ec.SECP256R1())
    device_cert = self_signed(device_key)

    def tls(client_id: str, **subject: str) -> dict[str, Any]:
        return {"client_id": client_id, "token_endpoint_auth_method": "tls_client_auth",
                "tls_client_auth_ca_file": "ca.pem", **subject}

    raw = {"clients": [
        {"client_id": "basic", "token_endpoint_auth_method": "client_secret_basic",
         "client_secret_file": "shared.secret", "grant_types": ["client_credentials"],
         "access_token_duration": 300, "refresh_token_duration": 3600,
         "properties": {"tier": "gold"}, "jwt_at_claims": {"roles": ["reader"]}},
        {"client_id": "post", "token_endpoint_auth_method": "client_secret_post",
         "client_secret_file": "shared.secret"},
        {"client_id": "hashed", "token_endpoint_auth_method": "client_secret_basic",
         "client_secret_hash": FAST_ARGON2.hash(SECRET)},
        {"client_id": "hmac", "token_endpoint_auth_method": "client_secret_jwt",
         "client_secret_file": "jwt.secret"},
        {"client_id": "hmac512", "token_endpoint_auth_method": "client_secret_jwt",
         "client_secret_file": "jwt.secret", "token_endpoint_auth_signing_alg": "HS384"},
        {"client_id": "signer", "token_endpoint_auth_method": "private_key_jwt",
         "jwks": {"keys": [public_jwk(signer_key, kid="k1")]}},
        {"client_id": "es256-only", "token_endpoint_auth_method": "private_key_jwt",
         "jwks": {"keys": [public_jwk(signer_key, kid="k1")]},
         "token_endpoint_auth_signing_alg": "ES256"},
        {"client_id": "rsa", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_file": "rsa.json"},
        {"client_id": "remote", "token_endpoint_auth_method": "private_key_jwt",
         "jwks_uri": SIGNER_URI},
        tls("pki-dn", tls_client_auth_subject_dn="CN=Billing Service,OU=Payments,O=Example"),
        tls("pki-dn-spaced",
            tls_client_auth_subject_dn="cn = billing service , ou=payments,  o=EXAMPLE"),
        tls("pki-dns", tls_client_auth_san_dns="billing.example.com"),
        tls("pki-uri", tls_client_auth_san_uri="spiffe://example.com/ns/pay/sa/billing"),
        tls("pki-ip", tls_client_auth_san_ip="10.1.2.3"),
        tls("pki-ip6", tls_client_auth_san_ip="2001:db8::1"),
        tls("pki-email", tls_client_auth_san_email="Billing@Example.com"),
        {"client_id": "device", "token_endpoint_auth_method": "self_signed_tls_client_auth",
         "jwks": {"keys": [x5c_jwk(device_key, device_cert)]}},
        {"client_id": "device-remote",
         "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks_uri": JWKS_URI},
        {"client_id": "public", "token_endpoint_auth_method": "none",
         "grant_types": ["authorization_code", "refresh_token"], "dpop_bound_access_tokens": True,
         "dpop_nonce_required": True, "tls_client_certificate_bound_access_tokens": True},
    ]}
    clock = FakeClock(NOW)
    fetcher = ScriptedFetcher(404)
    fetcher.documents[SIGNER_URI] = {"keys": [public_jwk(signer_key, kid="k1")]}
    fetcher.documents[JWKS_URI] = {"keys": [x5c_jwk(device_key, device_cert)]}
    return World(
        registry=registry_from_mapping(raw, tmp_path), clock=clock,
        store=MemoryStore(1000, "test:", clock), fetcher=fetcher,
        jwks=CachingJwksSource(fetcher, clock), secrets=CachingSecretVerifier(),
        signer_key=signer_key, rsa_key=rsa_key, pki=pki, device_key=device_key,
        device_cert=device_cert)


def params(**values: str) -> FormParams:
    return FormParams({k: (v,) for k, v in values.items()})


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then Basic."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}"
    return "Basic " + base64.b64encode(raw.encode("ascii")).decode("ascii")


def via_basic(client_id: str, secret: str, **body: str) -> ClientCredentials | OAuthError:
    return extract_client_credentials(basic(client_id, secret), params(**body), False, realm=ISSUER)


def via_post(client_id: str, secret: str) -> ClientCredentials | OAuthError:
    return extract_client_credentials(None, params(client_id=client_id, client_secret=secret),
                                      False, realm=ISSUER)


def via_assertion(token: str, **body: str) -> ClientCredentials | OAuthError:
    return extract_client_credentials(None, params(
        client_assertion=token, client_assertion_type=JWT_BEARER_ASSERTION, **body), False,
        realm=ISSUER)


def via_id(client_id: str, certificate: bool = False) -> ClientCredentials | OAuthError:
    return extract_client_credentials(None, params(client_id=client_id), certificate, realm=ISSUER)


def assertion(key: Any, client_id: str = "signer", alg: str = "ES256", *,
              headers: dict[str, Any] | None = None, **claims: Any) -> str:
    """A client assertion as OpenID Connect Core §9 describes it; a claim set to None is
    left out."""
    base: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": ISSUER,
                            "exp": int(NOW) + 60, "iat": int(NOW), "jti": uuid.uuid4().hex}
    base.update(claims)
    payload = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


# ---------------------------------------------------------------------------------------
# client_secret_basic / client_secret_post


async def test_basic_with_plus_percent_colon_and_non_ascii(world: World) -> None:
    result = await world.ok(via_basic("basic", SECRET))
    assert (result.authenticated, result.method) == (True, "client_secret_basic")
    assert result.client is not None and result.client.client_id == "basic"


async def test_basic_wrong_secret_gets_the_basic_challenge(world: World) -> None:
    error = await world.refused(via_basic("basic", SECRET + "x"), "client.secret_mismatch")
    # RFC 6749 §5.2: the client used the Authorization header, so the challenge is Basic.
    assert error.headers == (("WWW-Authenticate",
                              f'Basic realm="{ISSUER}", error="invalid_client"'),)
    assert error.body == {"error": "invalid_client",
                          "error_description": "Client authentication failed."}


@pytest.mark.parametrize("wrong", [
    "p ss%20w:rd é ✓ &=;",  # "+" read as a space: what a decoder that skips App. B does
    "p+ss w:rd é ✓ &=;",  # "%20" decoded twice
    "p+ss%20w:rd e ✓ &=;",  # NFC vs ASCII: no Unicode folding of secrets
    "P+SS%20W:RD É ✓ &=;",
    "",
])
async def test_near_misses_are_refused(world: World, wrong: str) -> None:
    await world.refused(via_basic("basic", wrong), "client.secret_mismatch")
    await world.refused(via_post("post", wrong) if wrong else via_post("post", "x"),
                        "client.secret_mismatch")


async def test_post_with_the_same_secret(world: World) -> None:
    result = await world.ok(via_post("post", SECRET))
    assert (result.authenticated, result.method) == (True, "client_secret_post")
    error = await world.refused(via_post("post", "nope"), "client.secret_mismatch")
    assert error.headers == ()  # no Authorization header was used: no challenge


async def test_secret_with_control_characters_is_refused_before_comparing(world: World
                                                                           ) -> None:
    credentials = ClientCredentials("post", "client_secret_post", secret="a\x00b")
    await world.refused(credentials, "client.secret_mismatch")


async def test_hashed_secret_is_verified_once_then_remembered(world: World) -> None:
    for _ in range(3):
        result = await world.ok(via_basic("hashed", SECRET))
        assert result.authenticated
    assert world.secrets.hash_verifications == 1


async def test_wrong_secret_for_a_hash_is_never_remembered(world: World) -> None:
    for _ in range(3):
        await world.refused(via_basic("hashed", "wrong"), "client.secret_mismatch")
    assert world.secrets.hash_verifications == 3
    await world.ok(via_basic("hashed", SECRET))
    assert world.secrets.hash_verifications == 4


async def test_a_new_hash_invalidates_what_was_remembered(world: World, tmp_path: Path) -> None:
    await world.ok(via_basic("hashed", SECRET))
    world.registry = registry_from_mapping({"clients": [{
        "client_id": "hashed", "token_endpoint_auth_method": "client_secret_basic",
        "client_secret_hash": FAST_ARGON2.hash("rotated")}]}, tmp_path)
    await world.refused(via_basic("hashed", SECRET), "client.secret_mismatch")
    await world.ok(via_basic("hashed", "rotated"))


# ---------------------------------------------------------------------------------------
# Unknown clients, wrong methods


async def test_unknown_client_is_refused_or_forwarded(world: World) -> None:
    error = await world.refused(via_basic("stranger", "x"), "client.unknown")
    assert error.headers[0][0] == "WWW-Authenticate"
    assert "stranger" in error.detail and "stranger" not in error.description
    forwarded = await world.ok(via_basic("stranger", "x"), unknown="forward")
    assert forwarded == AuthenticatedClient(None, False, "client_secret_basic")
    assert context_headers(forwarded) == [("Client-Authenticated", "false")]


async def test_unidentified_client(world: World) -> None:
    nobody = extract_client_credentials(None, params(grant_type="client_credentials"), False,
                                        realm=ISSUER)
    await world.refused(nobody, "client.unidentified")
    assert (await world.ok(nobody, unknown="forward")).client is None


@pytest.mark.parametrize(("credentials", "why"), [
    (via_post("basic", SECRET), "a basic client using the body"),
    (via_basic("post", SECRET), "a post client using Basic"),
    (via_basic("signer", SECRET), "a key client using a secret"),
    (via_post("public", SECRET), "a public client sending a secret"),
    (via_id("basic"), "a secret client sending none"),
])
async def test_only_the_registered_method_is_accepted(world: World,
                                                      credentials: ClientCredentials,
                                                      why: str) -> None:
    await world.refused(credentials, "client.wrong_method")


async def test_hs256_assertion_for_a_private_key_client_is_the_wrong_method(world: World
                                                                           ) -> None:
    token = assertion(JWT_SECRET.encode(), "signer", "HS256")
    await world.refused(via_assertion(token), "client.wrong_method")


async def test_public_client(world: World) -> None:
    result = await world.ok(via_id("public"))
    assert (result.authenticated, result.method) == (False, "none")
    # RFC 8705 §4: a public client may present a certificate to bind its tokens.
    cert = presented(world.pki.issue())
    with_cert = await world.ok(via_id("public", certificate=True), cert)
    assert (with_cert.authenticated, with_cert.method) == (False, "none")


# ---------------------------------------------------------------------------------------
# client_secret_jwt


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


# ---------------------------------------------------------------------------------------
# tls_client_auth


def dns(name: str) -> x509.GeneralName:
    return x509.DNSName(name)


@pytest.mark.parametrize(("client_id", "subject", "sans"), [
    ("pki-dn", "CN=Billing Service,OU=Payments,O=Example", []),
    ("pki-dn", "CN=billing   service,OU=PAYMENTS,O=example", []),  # compared per RFC 4518
    ("pki-dn-spaced", "CN=Billing Service,OU=Payments,O=Example", []),
    ("pki-dns", "CN=x", [dns("other.example.com"), dns("Billing.Example.COM")]),
    ("pki-uri", "CN=x", [x509.UniformResourceIdentifier("spiffe://example.com/ns/pay/sa/billing")]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("10.1.2.3"))]),
    ("pki-ip6", "CN=x", [x509.IPAddress(ipaddress.ip_address("2001:db8:0::1"))]),
    ("pki-email", "CN=x", [x509.RFC822Name("Billing@example.COM")]),
])
async def test_tls_client_auth_each_subject_kind(world: World, client_id: str, subject: str,
                                                 sans: list[x509.GeneralName]) -> None:
    cert = presented(world.pki.issue(subject, sans))
    result = await world.ok(via_id(client_id, certificate=True), cert)
    assert (result.authenticated, result.method) == (True, "tls_client_auth")


@pytest.mark.parametrize(("client_id", "subject", "sans"), [
    ("pki-dn", "CN=Billing Service,OU=Refunds,O=Example", []),
    ("pki-dn", "OU=Payments,O=Example,CN=Billing Service", []),  # another order
    ("pki-dn", "CN=Billing Service,OU=Payments,O=Example,C=DE", []),
    ("pki-dns", "CN=billing.example.com", [dns("billing.example.com.evil")]),  # CN is no SAN
    ("pki-uri", "CN=x", [x509.UniformResourceIdentifier("spiffe://example.com/ns/pay/sa/Billing")]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("10.1.2.4"))]),
    ("pki-ip", "CN=x", [x509.IPAddress(ipaddress.ip_address("::ffff:10.1.2.3"))]),
    ("pki-email", "CN=x", [x509.RFC822Name("billing@example.com")]),  # local part differs
    ("pki-email", "CN=x", [dns("example.com")]),
])
async def test_tls_client_auth_subject_mismatch(world: World, client_id: str, subject: str,
                                                sans: list[x509.GeneralName]) -> None:
    cert = presented(world.pki.issue(subject, sans))
    await world.refused(via_id(client_id, certificate=True), "client.certificate_subject", cert)


async def test_tls_client_auth_wrong_ca(world: World) -> None:
    other = Issuer()
    cert = presented(other.issue("CN=Billing Service,OU=Payments,O=Example"))
    error = await world.refused(via_id("pki-dn", certificate=True), "client.certificate_untrusted",
                                cert)
    assert error.detail  # the verifier's reason is logged


async def test_tls_client_auth_with_an_intermediate(world: World) -> None:
    intermediate = Issuer(world.pki.ca.create_child_ca())
    leaf = intermediate.issue("CN=x", [dns("billing.example.com")])
    cert = presented(leaf, intermediate.certificate)
    assert (await world.ok(via_id("pki-dns", certificate=True), cert)).authenticated
    # Without the intermediate there is no path to the client's CA.
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted",
                        presented(leaf))


async def test_subject_is_matched_on_the_leaf_only(world: World) -> None:
    # The intermediate carries the registered DN; the leaf does not: refused (a server that
    # matches any certificate of the chain would accept it; RFC 8705 §2.1 names the client's).
    child = world.pki.ca.create_child_ca()
    intermediate = Issuer(child)
    ca_subject = intermediate.certificate.subject.rfc4514_string()
    leaf = intermediate.issue("CN=someone else")
    registered = world.registry.get("pki-dn")
    assert registered is not None and registered.tls_client_auth_ca_file is not None
    world.registry = registry_from_mapping({"clients": [{
        "client_id": "pki-x", "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_subject_dn": ca_subject,
        "tls_client_auth_ca_file": registered.tls_client_auth_ca_file}]}, Path("/"))
    await world.refused(via_id("pki-x", certificate=True), "client.certificate_subject",
                        presented(leaf, intermediate.certificate))


async def test_tls_client_auth_expired_certificate(world: World) -> None:
    past = datetime.datetime.fromtimestamp(NOW - 86400, datetime.UTC)
    cert = presented(world.pki.issue("CN=x", [dns("billing.example.com")], not_after=past))
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted", cert)


async def test_tls_client_auth_certificate_not_for_client_auth(world: World) -> None:
    server_only = world.pki.issue("CN=x", [dns("billing.example.com")],
                                  eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    await world.refused(via_id("pki-dns", certificate=True), "client.certificate_untrusted",
                        presented(server_only))
    no_eku = world.pki.issue("CN=x", [dns("billing.example.com")], eku=[])
    assert (await world.ok(via_id("pki-dns", certificate=True), presented(no_eku))).authenticated


async def test_tls_client_auth_ca_certificate_as_leaf(world: World) -> None:
    await world.refused(via_id("pki-dn", certificate=True), "client.certificate_untrusted",
                        presented(world.pki.certificate))


async def test_trustme_leaf_with_critical_san_is_accepted(world: World) -> None:
    # trustme (like many private CAs) marks the SAN critical next to a subject; the Web PKI
    # profile refuses that, a private client PKI must not.
    leaf = world.pki.ca.issue_cert("billing.example.com", common_name="billing")
    der = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    assert (await world.ok(via_id("pki-dns", certificate=True), presented(der))).authenticated


async def test_tls_client_auth_without_certificate(world: World) -> None:
    await world.refused(via_id("pki-dns"), "client.certificate_required")
    await world.refused(ClientCredentials("pki-dns", "tls_client_auth"),
                        "client.certificate_required")


# ---------------------------------------------------------------------------------------
# self_signed_tls_client_auth


async def test_self_signed_registered_certificate(world: World) -> None:
    result = await world.ok(via_id("device", certificate=True), presented(world.device_cert))
    assert (result.authenticated, result.method) == (True, "self_signed_tls_client_auth")


async def test_self_signed_other_certificate(world: World) -> None:
    # Same subject, same key, another certificate: not the one registered.
    again = self_signed(world.device_key)
    await world.refused(via_id("device", certificate=True), "client.certificate_not_registered",
                        presented(again))
    await world.refused(via_id("device"), "client.certificate_required")


async def test_self_signed_from_jwks_uri_follows_rotation(world: World) -> None:
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(world.device_cert))).authenticated
    new_key = ec.generate_private_key(ec.SECP256R1())
    new_cert = self_signed(new_key)
    world.fetcher.documents[JWKS_URI] = {"keys": [x5c_jwk(new_key, new_cert)]}
    await world.refused(via_id("device-remote", certificate=True),
                        "client.certificate_not_registered", presented(new_cert))
    world.clock.t += 61
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(new_cert))).authenticated
    # The key server goes away: the last good set is served for a while (stale-if-error),
    # then the client cannot authenticate until it is back.
    del world.fetcher.documents[JWKS_URI]
    world.clock.t += 400
    assert (await world.ok(via_id("device-remote", certificate=True),
                           presented(new_cert))).authenticated
    world.clock.t += 3600
    await world.refused(via_id("device-remote", certificate=True), "client.jwks_unavailable",
                        presented(new_cert))


# ---------------------------------------------------------------------------------------
# Policy and context


async def test_client_policy(world: World) -> None:
    basic_client = await world.ok(via_basic("basic", SECRET))
    assert check_client_policy(basic_client, "client_credentials", dpop_proof=False,
                               certificate=False) is None
    error = check_client_policy(basic_client, "authorization_code", dpop_proof=False,
                                certificate=False)
    assert error is not None and error.code == "unauthorized_client"
    assert error.result_code == "client.grant_not_allowed" and error.status == 400
    public = await world.ok(via_id("public"))
    error = check_client_policy(public, "refresh_token", dpop_proof=False, certificate=True)
    assert error is not None and error.result_code == "client.dpop_required"
    error = check_client_policy(public, "refresh_token", dpop_proof=True, certificate=False)
    assert error is not None and error.result_code == "client.certificate_required_for_binding"
    assert check_client_policy(public, "refresh_token", dpop_proof=True, certificate=True) is None
    unknown = AuthenticatedClient(None, False, "none")
    assert check_client_policy(unknown, "password", dpop_proof=False, certificate=False) is None


async def test_context_headers(world: World) -> None:
    basic_client = await world.ok(via_basic("basic", SECRET))
    assert context_headers(basic_client) == [
        ("Client-Authenticated", "true"),
        ("Access-Token-Duration", "300"),
        ("Refresh-Token-Duration", "3600"),
        ("Properties", '{"tier":"gold"}'),
        ("JWT-AT-Claims", '{"roles":["reader"]}'),
    ]
    public = await world.ok(via_id("public"))
    assert context_headers(public) == [("Client-Authenticated", "false")]


async def test_dpop_nonce_required_follows_the_client_or_the_default(world: World) -> None:
    public = await world.ok(via_id("public"))
    assert dpop_nonce_required(public, False) is True
    post = await world.ok(via_post("post", SECRET))
    assert dpop_nonce_required(post, True) is True and dpop_nonce_required(post, False) is False
    assert dpop_nonce_required(AuthenticatedClient(None, False, "none"), True) is True


def test_policy_from_settings() -> None:
    settings = settings_from_mapping({
        "server": {"public_token_endpoint": ENDPOINT},
        "upstream": {"url": "http://127.0.0.1:9000"},
        "clients": {"unknown": "forward", "assertion_audiences": "issuer_or_endpoint"},
    }, {})
    policy = ClientAuthPolicy.from_settings(settings, leeway_seconds=5)
    assert (policy.issuer, policy.token_endpoint, policy.unknown) == (ISSUER, ENDPOINT, "forward")
    assert policy.audiences == frozenset({ISSUER, ENDPOINT}) and policy.leeway_seconds == 5
    assert "none" not in policy.assertion_algorithms


async def test_the_assertion_jti_is_left_to_the_last_step(world: World) -> None:
    # Everything but the jti is checked; the pipeline burns it last, with the DPoP jti, so a
    # request refused later (use_dpop_nonce) keeps its assertion usable.
    token = assertion(world.signer_key, jti="deferred", exp=int(NOW) + 60)
    credentials = via_assertion(token)
    assert isinstance(credentials, ClientCredentials)
    replays = []
    for _ in range(2):  # authenticating does not use the assertion up
        result = await authenticate(credentials, None, world.registry, policy=world.policy,
                                    now=NOW, jwks=world.jwks, secrets=world.secrets)
        assert isinstance(result, AuthenticatedClient) and result.replay is not None
        replays.append(result.replay)
    replay = replays[-1]
    assert replays[0].value == replay.value
    assert (replay.kind, replay.value) == ("client_assertion", "signer:deferred")
    assert 60 < replay.ttl_seconds <= 120  # until exp, plus the leeway
    env = pipeline_env(pipeline_settings(), clock=world.clock, store=world.store)
    assert await burn_last(env, replay) is None
    burned_twice = await burn_last(env, replay)
    assert burned_twice is not None
    assert (burned_twice.status, burned_twice.result_code) == (401, "client.assertion_replayed")
    # Secrets and certificates have nothing to burn.
    assert (await world.ok(via_post("post", SECRET))).replay is None
