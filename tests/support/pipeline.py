"""The decision core driven the way the HTTP shell drives it: settings -> `Policy` -> `StepContext`
(sidecar/http/runtime.py builds the same one), with the store `store.url` names (memory://,
or a Redis that is down), the fake clock, scripted JWKS documents and the real secret
verifier. No HTTP: what goes in is a `TokenRequest`, what comes out a `Decision`."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import jwt
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sidecar.adapters import open_store
from sidecar.adapters.client_secrets import CachingSecretVerifier
from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.core.credentials import JWT_BEARER_ASSERTION
from sidecar.core.form import parse_form
from sidecar.core.grants.names import JWT_BEARER
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.policy import Policy
from sidecar.core.steps import BurnReplays, ProofFacts, StepContext
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, FormParams, Forward, ReplayCheck, Respond, TokenRequest
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import Settings, settings_from_mapping
from tests.support.dpop import DpopKey
from tests.support.fakes import FakeClock, ScriptedFetcher

TOKEN_URL = "https://as.example.com/token"  # tests/conftest.py TOKEN_URL_PUBLIC
UNUSED_UPSTREAM = "http://127.0.0.1:9"  # the core never calls the upstream


def pipeline_settings(base_dir: Path | None = None, **sections: dict[str, Any]) -> Settings:
    """The settings of the HTTP tests (tests/conftest.py `make_settings`) with `sections` on
    top; files named in them are relative to `base_dir`, as they are to the config file."""
    raw: dict[str, dict[str, Any]] = {"server": {"public_token_endpoint": TOKEN_URL},
                                      "upstream": {"url": UNUSED_UPSTREAM}}
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    settings = settings_from_mapping(raw, {})
    return dataclasses.replace(settings, base_dir=str(base_dir)) if base_dir else settings


def pipeline_env(settings: Settings, *, clock: Clock,
                 store: ReplayStore | None = None) -> StepContext:
    """The store `store.url` names unless one is given; JWKS documents from no URL (the keys
    the tests use are inline)."""
    clients = settings.clients
    jwks = CachingJwksSource(ScriptedFetcher(), clock,
                             ttl_seconds=clients.jwks_cache_ttl_seconds,
                             min_refetch_seconds=clients.jwks_min_refetch_seconds,
                             stale_if_error_seconds=clients.jwks_stale_if_error_seconds)
    secrets = CachingSecretVerifier(cache_size=clients.secret_cache_size,
                             max_concurrent_hashes=clients.max_concurrent_hash_checks)
    if store is None:  # not `store or ...`: an empty MemoryStore is falsy (it has a length)
        store = open_store(settings.store, clock)
    return StepContext(Policy.from_settings(settings, LOCAL_FILES), store, clock, jwks, secrets)


async def burn_last(env: StepContext, *replays: ReplayCheck) -> OAuthError | None:
    """What the pipeline's last step does with the single-use values a check returned."""
    request = TokenRequest("POST", FormParams({}))  # BurnReplays reads only the facts
    return await BurnReplays.of(env)(request, ProofFacts(replays=list(replays)))


# ---------------------------------------------------------------------------------------
# A harness for the pipeline's tables: keys, settings profiles, requests, expectations.

ISSUER = "https://as.example.com"
IDP = "https://idp.example.com"
ATTESTER = "https://attester.example.com"
SECRET = "a client secret with + and %"
NONCE_SECRET = "a-dpop-nonce-secret-0123456789abcdef"
CC = "grant_type=client_credentials"
# A public client, named but not authenticated: every token request names its client (README
# "Client registry and client authentication").
SPA = f"{CC}&client_id=spa"

CLIENT = DpopKey()  # the client's DPoP key
OTHER = DpopKey()  # someone else's
SIGNER = ec.generate_private_key(ec.SECP256R1())  # private_key_jwt client "signer"
IDP_KEY = ec.generate_private_key(ec.SECP256R1())  # the trusted jwt-bearer issuer
ATTESTER_KEY = ec.generate_private_key(ec.SECP256R1())
INSTANCE = ec.generate_private_key(ec.SECP256R1())  # the wallet instance's key
STRANGER = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, **extra}


def _client_certificate() -> ClientCertificate:
    leaf = trustme.CA().issue_cert("client.example.com")
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    return ClientCertificate.from_der(cert.public_bytes(serialization.Encoding.DER))


CERT = _client_certificate()
CERT_HEADER = CERT.url_encoded_pem()  # what nginx's $ssl_client_escaped_cert holds

# ---------------------------------------------------------------------------------------
# Settings profiles: a row names the ones it needs.

REGISTRY: dict[str, dict[str, Any]] = {"clients": {"registry_file": "clients.toml"}}
NONCES: dict[str, dict[str, Any]] = {
    "dpop": {"nonce_secret_file": "nonce.secret", "nonce_required": True}}
DPOP_REQUIRED: dict[str, dict[str, Any]] = {"dpop": {"required": True}}
JWT_ISSUERS: dict[str, dict[str, Any]] = {"grants": {"jwt_bearer": {"issuers": [
    {"issuer": IDP, "jwks": {"keys": [public_jwk(IDP_KEY, kid="idp-1")]}}]}}}
ATTESTATION: dict[str, dict[str, Any]] = {"attestation": {"enabled": True, "attesters": [
    {"issuer": ATTESTER, "jwks": {"keys": [public_jwk(ATTESTER_KEY, kid="attester-1")]},
     "clients": ["wallet-app"]}]}}
STORE_DOWN: dict[str, dict[str, Any]] = {"store": {"url": "redis://down"}}  # see Pipeline
STORE_DOWN_OPEN: dict[str, dict[str, Any]] = {"store": {"url": "redis://down",
                                                        "failure_mode": "open"}}

REGISTRY_TOML = f"""
[[clients]]
client_id = "basic"
token_endpoint_auth_method = "client_secret_basic"
client_secret_file = "basic.secret"
grant_types = ["client_credentials"]

[[clients]]
client_id = "signer"
token_endpoint_auth_method = "private_key_jwt"
grant_types = ["client_credentials"]
jwks = '{json.dumps({"keys": [public_jwk(SIGNER, kid="s1")]})}'

[[clients]]
client_id = "public"
token_endpoint_auth_method = "none"
grant_types = ["authorization_code", "refresh_token"]
dpop_bound_access_tokens = true
"""


def profile(*parts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for section, values in part.items():
            merged.setdefault(section, {}).update(values)
    return merged


# ---------------------------------------------------------------------------------------
# The harness.


@dataclass(frozen=True)
class Req:
    """A request as the HTTP shell reads it; the body is the form as sent."""

    body: str
    method: str = "POST"
    authorization: str | None = None
    dpop: tuple[str, ...] = ()
    cert: str | None = None
    attestation: tuple[str, ...] = ()
    attestation_pop: tuple[str, ...] = ()

    def token_request(self) -> TokenRequest:
        params = parse_form(self.body.encode())
        assert isinstance(params, FormParams), params
        return TokenRequest(self.method, params, self.authorization, self.cert, None, self.dpop,
                            self.attestation, self.attestation_pop, self.body.encode())


class Pipeline:
    """The files the settings name, the clock, and an `StepContext` per settings."""

    def __init__(self, tmp_path: Path, refusing_port: int) -> None:
        self.tmp_path = tmp_path
        self.refusing_port = refusing_port
        self.clock = FakeClock()
        self.envs: list[StepContext] = []
        (tmp_path / "clients.toml").write_text(REGISTRY_TOML)
        (tmp_path / "basic.secret").write_text(SECRET + "\n")
        (tmp_path / "nonce.secret").write_text(NONCE_SECRET + "\n")

    def env(self, sections: Mapping[str, Mapping[str, Any]] = {}) -> StepContext:
        raw = {name: dict(values) for name, values in sections.items()}
        if raw.get("store", {}).get("url") == "redis://down":
            # A port bound and never listened on: every connection is refused.
            raw["store"]["url"] = f"redis://127.0.0.1:{self.refusing_port}"
        env = pipeline_env(pipeline_settings(self.tmp_path, **raw), clock=self.clock)
        self.envs.append(env)
        return env

    async def close(self) -> None:
        for env in self.envs:
            await env.store.close()

    # What clients send, signed at the fake clock's time.

    def proof(self, key: DpopKey = CLIENT, htu: str = TOKEN_URL, **claims: Any) -> str:
        return key.proof(htu, iat=self.clock.now(), **claims)

    def nonce(self, env: StepContext) -> str:
        assert env.policy.nonces is not None
        return env.policy.nonces.issue(self.clock.now())

    def client_assertion(self, jti: str | None = None) -> str:
        now = int(self.clock.now())
        return jwt.encode({"iss": "signer", "sub": "signer", "aud": ISSUER, "iat": now,
                           "exp": now + 60, "jti": jti or uuid.uuid4().hex}, SIGNER,
                          algorithm="ES256", headers={"kid": "s1"})

    def grant_assertion(self, key: ec.EllipticCurvePrivateKey = IDP_KEY,
                        iss: str = IDP) -> str:
        now = int(self.clock.now())
        return jwt.encode({"iss": iss, "sub": "alice@example.com", "aud": TOKEN_URL,
                           "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}, key,
                          algorithm="ES256", headers={"kid": "idp-1"})

    def attestation(self) -> str:
        now = int(self.clock.now())
        return jwt.encode({"iss": ATTESTER, "sub": "wallet-app", "iat": now, "exp": now + 3600,
                           "cnf": {"jwk": public_jwk(INSTANCE)}}, ATTESTER_KEY,
                          algorithm="ES256",
                          headers={"typ": "oauth-client-attestation+jwt", "kid": "attester-1"})

    def attestation_pop(self, key: ec.EllipticCurvePrivateKey = INSTANCE) -> str:
        return jwt.encode({"aud": ISSUER, "jti": uuid.uuid4().hex, "iat": int(self.clock.now())},
                          key, algorithm="ES256",
                          headers={"typ": "oauth-client-attestation-pop+jwt"})


@dataclass(frozen=True)
class Forwarded:
    """Forwarded to the upstream with these context headers (names without the prefix)."""

    action: Action
    context: Mapping[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # context headers that must not be there
    refresh_binding: str | None = None  # what a refresh token issued now is bound to


@dataclass(frozen=True)
class Refused:
    code: str
    result_code: str
    status: int = 400
    headers: Mapping[str, str] = field(default_factory=dict)  # selected response headers


Expected = Forwarded | Refused


def assert_decision(decision: Decision, expected: Expected, *,
                    action_header: bool = True) -> None:
    """`action_header`: a token request's context starts with the Action (a PAR one has none)."""
    if isinstance(expected, Refused):
        assert isinstance(decision, Respond), decision
        error = decision.error
        assert (error.code, error.result_code, error.status) == \
            (expected.code, expected.result_code, expected.status), error
        headers = dict(error.headers)
        for name, value in expected.headers.items():
            assert headers.get(name) == value, (name, error.headers)
        return
    assert isinstance(decision, Forward), decision
    context = dict(decision.context)
    assert len(context) == len(decision.context), decision.context  # each header once
    assert decision.action is expected.action
    if action_header:
        assert context["Action"] == expected.action.value
    for name, value in expected.context.items():
        assert context.get(name) == value, (name, decision.context)
    for name in expected.absent:
        assert name not in context, (name, decision.context)
    assert decision.bind_refresh_token_to == expected.refresh_binding


@dataclass(frozen=True)
class Case:
    name: str  # "<step>: what happens"
    request: Callable[[Pipeline, StepContext], Req]
    expect: Expected
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    bound: Mapping[str, str] = field(default_factory=dict)  # refresh token -> its binding
    sends: int = 1  # the same request this many times; `expect` is about the last

    @property
    def step(self) -> str:
        return self.name.split(":", 1)[0]


def basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1: each part form-urlencoded, then Basic."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def assertion_body(assertion: str, grant: str = CC) -> str:
    return f"{grant}&client_assertion_type={JWT_BEARER_ASSERTION}&client_assertion={assertion}"


JWT_GRANT = f"grant_type={JWT_BEARER}"
AUTH_CODE = "grant_type=authorization_code&code=c&redirect_uri=https://app.example/cb"
AS_PUBLIC = f"{AUTH_CODE}&client_id=public"
REFRESH = "grant_type=refresh_token&refresh_token=rt-1&client_id=spa"
INVALID_DPOP = "invalid_dpop_proof"
JKT = f"jkt:{CLIENT.jkt}"

