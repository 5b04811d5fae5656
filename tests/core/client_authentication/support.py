"""The world of the client authentication tests: a registry of every method, the real
MemoryStore, the key source, the verifier; real keys, certificates and assertions (pyjwt and
Authlib)."""

from __future__ import annotations

import base64
import datetime
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import argon2
import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sidecar.adapters.client_secrets import CachingSecretVerifier
from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.adapters.memory import MemoryStore
from sidecar.core.client_authentication.methods import authenticate
from sidecar.core.client_authentication.policy import AuthenticatedClient, ClientAuthPolicy
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.clients.model import Registry
from sidecar.core.credentials import (
    JWT_BEARER_ASSERTION,
    ClientCredentials,
    extract_client_credentials,
)
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from tests.support.fakes import FakeClock, ScriptedFetcher
from tests.support.keys import public_jwk
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


def make_world(tmp_path: Path) -> World:
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
        registry=registry_from_mapping(raw, tmp_path, LOCAL_FILES), clock=clock,
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
