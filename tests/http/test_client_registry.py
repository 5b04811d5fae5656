"""Client registry and client authentication through real HTTP, with real third-party clients
(requests-oauth2client, authlib): every method succeeds and fails, policy headers, binding,
jwks_uri rotation, reload under traffic, the JWT bearer grant (RFC 6749 §2.3, RFC 7523,
RFC 8705)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import argon2
import jwt
import pytest
import requests_oauth2client as roc
import trustme
from aiohttp import web
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey
from jwt.algorithms import ECAlgorithm

from tests.conftest import Sidecar, SidecarFactory
from tests.support.dpop import DpopKey
from tests.support.servers import free_port, start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# RFC 6749 §2.3.1: '+', '%', ':' and non-ASCII must survive, however the client encodes.
SECRET = "p+ss%20w:rd-é"
HMAC_SECRET = "an HMAC secret, long enough: +%:é 0123456789"
FAST_ARGON2 = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class ShiftedClock:
    """Real time, moved forward at will: the assertions in these tests are signed with the
    real time, and the test skips a minute of it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "ES256"}


def private_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**json.loads(ECAlgorithm.to_jwk(key)), "kid": kid, "alg": "ES256"}


def self_signed(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert, key


def escaped_pem(cert: x509.Certificate) -> str:
    return quote(cert.public_bytes(serialization.Encoding.PEM).decode(), safe="")


@dataclass
class World:
    """A registry on disk and everything the clients of it hold."""

    path: Path
    pki_dn: str
    signer_key: ec.EllipticCurvePrivateKey
    ca: trustme.CA
    pki_cert_pem: str
    device_cert: x509.Certificate
    other_cert: x509.Certificate


def registry_text(world_dir: Path, signer_key: ec.EllipticCurvePrivateKey,
                  device_cert: x509.Certificate, pki_dn: str, extra: str = "") -> str:
    device_jwk = {**public_jwk(ec_key(), "device"),
                  "x5c": [base64.b64encode(device_cert.public_bytes(
                      serialization.Encoding.DER)).decode()]}
    device_jwk.pop("alg")
    device_public = device_cert.public_key()
    assert isinstance(device_public, ec.EllipticCurvePublicKey)
    device_jwk.update(json.loads(ECAlgorithm.to_jwk(device_public)))
    return f"""
[[clients]]
client_id = "billing"
token_endpoint_auth_method = "client_secret_basic"
client_secret_file = "billing.secret"
grant_types = ["client_credentials"]
access_token_duration = 600
refresh_token_duration = 86400
properties = {{ tier = "gold" }}
jwt_at_claims = {{ roles = ["reader"] }}

[[clients]]
client_id = "poster"
token_endpoint_auth_method = "client_secret_post"
client_secret_hash = "{FAST_ARGON2.hash(SECRET)}"
grant_types = ["client_credentials"]

[[clients]]
client_id = "hmac"
token_endpoint_auth_method = "client_secret_jwt"
client_secret_file = "hmac.secret"
grant_types = ["client_credentials"]

[[clients]]
client_id = "signer"
token_endpoint_auth_method = "private_key_jwt"
jwks = '{json.dumps({"keys": [public_jwk(signer_key, "signer-1")]})}'
grant_types = ["client_credentials"]

[[clients]]
client_id = "pki"
token_endpoint_auth_method = "tls_client_auth"
tls_client_auth_subject_dn = "{pki_dn}"
tls_client_auth_ca_file = "ca.pem"
grant_types = ["client_credentials"]

[[clients]]
client_id = "device"
token_endpoint_auth_method = "self_signed_tls_client_auth"
jwks = '{json.dumps({"keys": [device_jwk]})}'
grant_types = ["client_credentials"]

[[clients]]
client_id = "spa"
token_endpoint_auth_method = "none"
grant_types = ["authorization_code", "refresh_token"]
dpop_bound_access_tokens = true

[[clients]]
client_id = "kiosk"
token_endpoint_auth_method = "none"
grant_types = ["authorization_code", "refresh_token"]
{extra}
"""


@pytest.fixture
def world(tmp_path: Path) -> World:
    (tmp_path / "billing.secret").write_text(SECRET + "\n")
    (tmp_path / "hmac.secret").write_text(HMAC_SECRET + "\n")
    ca = trustme.CA(organization_name="Example Corp")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    pki = ca.issue_cert("pki.example", common_name="pki.example",
                        organization_name="Example Corp")
    device_cert, _ = self_signed("device")
    other_cert, _ = self_signed("someone-else")
    signer_key = ec_key()
    # The registered DN differs in spacing and case from the certificate's: RFC 4514 rules.
    subject = x509.load_pem_x509_certificate(pki.cert_chain_pems[0].bytes()).subject
    pki_dn = ", ".join(f"{t.lower()}={v}" for t, _, v in
                       (rdn.partition("=") for rdn in subject.rfc4514_string().split(",")))
    path = tmp_path / "clients.toml"
    path.write_text(registry_text(tmp_path, signer_key, device_cert, pki_dn))
    return World(path, pki_dn, signer_key, ca, pki.cert_chain_pems[0].bytes().decode(), device_cert,
                 other_cert)


@pytest.fixture
async def registry_sidecar(sidecar_factory: SidecarFactory, world: World) -> Sidecar:
    return await sidecar_factory(clients={"registry_file": str(world.path)})


async def post(client: aiohttp.ClientSession, sidecar: Sidecar, body: str,
               headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
    async with client.post(sidecar.token_url, data=body,
                           headers={**FORM, **(headers or {})}) as response:
        return response.status, response.headers, await response.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(
        f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()).decode()}


def assertion(key: Any, client_id: str, aud: str, algorithm: str = "ES256", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": client_id, "sub": client_id, "aud": aud, "jti": uuid.uuid4().hex,
               "iat": now, "exp": now + 60, **claims}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": "signer-1"}
                      if algorithm == "ES256" else None)


JWT_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CC = "grant_type=client_credentials"
NEWCOMER = "grant_type=authorization_code&code=c&client_id=newcomer"


# --- third-party clients ---------------------------------------------------------------

@pytest.fixture
async def public_url_sidecar(sidecar_factory: SidecarFactory, world: World) -> Sidecar:
    """A sidecar whose public URL is its real one, as third-party clients sign `aud`/`htu`
    with the URL they call; those libraries put the endpoint in `aud`, so the older-client
    setting is on."""
    port = free_port()
    return await sidecar_factory(
        port=port, server={"public_token_endpoint": f"http://127.0.0.1:{port}/token"},
        clients={"registry_file": str(world.path), "assertion_audiences": "issuer_or_endpoint"})


@pytest.mark.parametrize("method", ["basic", "post", "client_secret_jwt", "private_key_jwt"])
async def test_requests_oauth2client_authenticates(public_url_sidecar: Sidecar, world: World,
                                                   method: str) -> None:
    url = public_url_sidecar.token_url
    auth: Any = {
        "basic": roc.ClientSecretBasic("billing", SECRET),
        "post": roc.ClientSecretPost("poster", SECRET),
        "client_secret_jwt": roc.ClientSecretJwt("hmac", HMAC_SECRET),
        "private_key_jwt": roc.PrivateKeyJwt("signer", private_jwk(world.signer_key,
                                                                   "signer-1")),
    }[method]

    def obtain() -> roc.BearerToken:
        return roc.OAuth2Client(url, auth=auth, testing=True).client_credentials()

    token = await asyncio.to_thread(obtain)
    assert token.access_token == "at-1"
    context = public_url_sidecar.upstream.last.context
    assert context["X-Token-Client-Authenticated"] == "true"
    assert context["X-Token-Client-Id"] == {"basic": "billing", "post": "poster",
                                            "client_secret_jwt": "hmac",
                                            "private_key_jwt": "signer"}[method]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post",
                                    "client_secret_jwt", "private_key_jwt"])
async def test_authlib_authenticates(public_url_sidecar: Sidecar, world: World,
                                     method: str) -> None:
    url = public_url_sidecar.token_url
    client_id, secret = {"client_secret_basic": ("billing", SECRET),
                         "client_secret_post": ("poster", SECRET),
                         "client_secret_jwt": ("hmac", HMAC_SECRET),
                         # Authlib reads a PEM string as RSA; an EC key goes in as a key.
                         "private_key_jwt": ("signer", ECKey.import_key(
                             private_jwk(world.signer_key, "signer-1")))}[method]

    def obtain() -> dict[str, Any]:
        auth_method: Any = {"client_secret_jwt": ClientSecretJWT(url),
                            "private_key_jwt": PrivateKeyJWT(url, alg="ES256")}.get(method,
                                                                                   method)
        session = OAuth2Session(client_id, secret, token_endpoint_auth_method=auth_method)
        with session:
            return dict(session.fetch_token(url, grant_type="client_credentials"))

    token = await asyncio.to_thread(obtain)
    assert token["access_token"] == "at-1"
    context = public_url_sidecar.upstream.last.context
    assert context["X-Token-Client-Authenticated"] == "true"
    assert context["X-Token-Client-Auth-Method"] == method


# --- each method through raw HTTP ------------------------------------------------------

async def test_basic_success_carries_the_client_policy(client: aiohttp.ClientSession,
                                                       registry_sidecar: Sidecar) -> None:
    status, _, _ = await post(client, registry_sidecar, CC, basic("billing", SECRET))
    assert status == 200
    assert registry_sidecar.upstream.last.context == {
        "X-Token-Action": "OK", "X-Token-Grant-Type": "client_credentials",
        "X-Token-Client-Auth-Method": "client_secret_basic", "X-Token-Client-Id": "billing",
        "X-Token-Client-Authenticated": "true", "X-Token-Access-Token-Duration": "600",
        "X-Token-Refresh-Token-Duration": "86400", "X-Token-Properties": '{"tier":"gold"}',
        "X-Token-JWT-AT-Claims": '{"roles":["reader"]}'}


async def test_wrong_basic_secret_is_401_with_a_basic_challenge(
        client: aiohttp.ClientSession, registry_sidecar: Sidecar) -> None:
    status, headers, body = await post(client, registry_sidecar, CC, basic("billing", "nope"))
    assert (status, body["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"].startswith('Basic realm="https://as.example.com"')
    assert 'error="invalid_client"' in headers["WWW-Authenticate"]
    assert registry_sidecar.upstream.received == []


async def test_wrong_post_secret_is_401_without_a_challenge(
        client: aiohttp.ClientSession, registry_sidecar: Sidecar) -> None:
    status, headers, body = await post(client, registry_sidecar,
                                       CC + "&client_id=poster&client_secret=nope")
    assert (status, body["error"]) == (401, "invalid_client")
    assert "WWW-Authenticate" not in headers


async def test_only_the_registered_method_is_accepted(client: aiohttp.ClientSession,
                                                      registry_sidecar: Sidecar) -> None:
    # billing is registered for client_secret_basic: the right secret in the body fails.
    status, _, body = await post(client, registry_sidecar,
                                 CC + f"&client_id=billing&client_secret={quote(SECRET)}")
    assert (status, body["error"]) == (401, "invalid_client")


async def test_unknown_clients_reject_or_forward(client: aiohttp.ClientSession,
                                                 sidecar_factory: SidecarFactory,
                                                 world: World) -> None:
    strict = await sidecar_factory(clients={"registry_file": str(world.path)})
    status, _, body = await post(client, strict, CC, basic("stranger", "x"))
    assert (status, body["error"]) == (401, "invalid_client")
    lenient = await sidecar_factory(clients={"registry_file": str(world.path),
                                             "unknown": "forward"})
    status, _, _ = await post(client, lenient, CC, basic("stranger", "x"))
    assert status == 200
    assert lenient.upstream.last.context["X-Token-Client-Authenticated"] == "false"


async def test_grant_not_registered_is_unauthorized_client(client: aiohttp.ClientSession,
                                                           registry_sidecar: Sidecar) -> None:
    status, _, body = await post(client, registry_sidecar,
                                 "grant_type=refresh_token&refresh_token=x",
                                 basic("billing", SECRET))
    assert (status, body["error"]) == (400, "unauthorized_client")


async def test_private_key_jwt_and_replay(client: aiohttp.ClientSession,
                                          registry_sidecar: Sidecar, world: World) -> None:
    signed = assertion(world.signer_key, "signer", "https://as.example.com")
    body = CC + f"&client_assertion_type={JWT_TYPE}&client_assertion={signed}"
    assert (await post(client, registry_sidecar, body))[0] == 200
    context = registry_sidecar.upstream.last.context
    assert context["X-Token-Client-Auth-Method"] == "private_key_jwt"
    assert context["X-Token-Client-Authenticated"] == "true"
    status, _, error = await post(client, registry_sidecar, body)
    assert (status, error["error"]) == (401, "invalid_client")
    assert len(registry_sidecar.upstream.received) == 1


@pytest.mark.parametrize("claims", [
    {"aud": "https://as.example.com/token"},  # the endpoint, not the issuer (rfc7523bis)
    {"aud": ["https://as.example.com", "https://other.example"]},  # not the sole audience
    {"exp": int(time.time()) - 120},
    {"exp": int(time.time()) + 86400},  # longer than the maximum lifetime
    {"sub": "billing"},
])
async def test_bad_assertions_are_refused(client: aiohttp.ClientSession,
                                          registry_sidecar: Sidecar, world: World,
                                          claims: dict[str, Any]) -> None:
    claims = dict(claims)
    signed = assertion(world.signer_key, "signer", claims.pop("aud", "https://as.example.com"),
                       **claims)
    body = CC + f"&client_assertion_type={JWT_TYPE}&client_assertion={signed}"
    status, _, error = await post(client, registry_sidecar, body)
    assert (status, error["error"]) == (401, "invalid_client")
    assert registry_sidecar.upstream.received == []


async def test_assertion_signed_by_another_key_or_hs256(client: aiohttp.ClientSession,
                                                        registry_sidecar: Sidecar) -> None:
    for signed in (assertion(ec_key(), "signer", "https://as.example.com"),
                   assertion(HMAC_SECRET.encode(), "signer", "https://as.example.com",
                             algorithm="HS256")):
        body = CC + f"&client_assertion_type={JWT_TYPE}&client_assertion={signed}"
        status, _, error = await post(client, registry_sidecar, body)
        assert (status, error["error"]) == (401, "invalid_client")


async def test_tls_client_auth(client: aiohttp.ClientSession, registry_sidecar: Sidecar,
                               world: World) -> None:
    cert = {"X-SSL-Client-Cert": quote(world.pki_cert_pem, safe="")}
    status, _, _ = await post(client, registry_sidecar, CC + "&client_id=pki", cert)
    assert status == 200
    assert registry_sidecar.upstream.last.context["X-Token-Client-Auth-Method"] == \
        "tls_client_auth"
    # A certificate from another CA, with the same subject, is refused.
    forged = trustme.CA(organization_name="Example Corp").issue_cert(
        "pki.example", common_name="pki.example", organization_name="Example Corp")
    status, _, body = await post(client, registry_sidecar, CC + "&client_id=pki", {
        "X-SSL-Client-Cert": quote(forged.cert_chain_pems[0].bytes().decode(), safe="")})
    assert (status, body["error"]) == (401, "invalid_client")
    status, _, body = await post(client, registry_sidecar, CC + "&client_id=pki")
    assert (status, body["error"]) == (401, "invalid_client")


async def test_self_signed_tls_client_auth(client: aiohttp.ClientSession,
                                           registry_sidecar: Sidecar, world: World) -> None:
    status, _, _ = await post(client, registry_sidecar, CC + "&client_id=device",
                              {"X-SSL-Client-Cert": escaped_pem(world.device_cert)})
    assert status == 200
    assert registry_sidecar.upstream.last.context["X-Token-Client-Auth-Method"] == \
        "self_signed_tls_client_auth"
    status, _, body = await post(client, registry_sidecar, CC + "&client_id=device",
                                 {"X-SSL-Client-Cert": escaped_pem(world.other_cert)})
    assert (status, body["error"]) == (401, "invalid_client")


# --- policy and binding ----------------------------------------------------------------

async def test_client_that_must_use_dpop(client: aiohttp.ClientSession,
                                         registry_sidecar: Sidecar) -> None:
    code = "grant_type=authorization_code&code=c&client_id=spa"
    status, _, body = await post(client, registry_sidecar, code)
    assert (status, body["error"]) == (400, "invalid_dpop_proof")
    status, _, _ = await post(client, registry_sidecar, code,
                              {"DPoP": DpopKey().proof("https://as.example.com/token")})
    assert status == 200
    assert registry_sidecar.upstream.last.context["X-Token-Client-Authenticated"] == "false"


async def test_public_client_refresh_token_bound_to_its_certificate(
        client: aiohttp.ClientSession, registry_sidecar: Sidecar, world: World) -> None:
    """RFC 8705 §4: a public client's refresh token is bound to the certificate it used."""
    registry_sidecar.upstream.token_body = {"access_token": "at", "token_type": "Bearer",
                                            "refresh_token": "rt-kiosk"}
    mine = {"X-SSL-Client-Cert": escaped_pem(world.device_cert)}
    other = {"X-SSL-Client-Cert": escaped_pem(world.other_cert)}
    assert (await post(client, registry_sidecar,
                       "grant_type=authorization_code&code=c&client_id=kiosk", mine))[0] == 200
    refresh = "grant_type=refresh_token&refresh_token=rt-kiosk&client_id=kiosk"
    for headers, description in (
            (other, "The refresh token is bound to another certificate."),
            ({}, "The refresh token is bound to a client certificate: present that "
                 "certificate.")):
        status, _, body = await post(client, registry_sidecar, refresh, headers)
        assert (status, body["error"]) == (400, "invalid_grant")
        assert body["error_description"] == description
    assert (await post(client, registry_sidecar, refresh, mine))[0] == 200


# --- jwks_uri rotation ------------------------------------------------------------------

async def test_jwks_uri_rotation_is_followed_without_restart(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    keys = {"current": ec_key()}
    served: list[int] = []

    async def jwks(request: web.Request) -> web.Response:
        served.append(1)
        return web.json_response({"keys": [public_jwk(keys["current"], f"k{len(served)}")]})

    app = web.Application()
    app.router.add_get("/jwks", jwks)
    runner, url = await start_app(app)
    registry = tmp_path / "clients.toml"
    registry.write_text(f'''
[[clients]]
client_id = "rotating"
token_endpoint_auth_method = "private_key_jwt"
jwks_uri = "{url}/jwks"
grant_types = ["client_credentials"]
''')
    clock = ShiftedClock()
    sidecar = await sidecar_factory(clock=clock, clients={"registry_file": str(registry)})

    def signed_body(kid: str) -> str:
        now = int(clock.now())
        token = jwt.encode({"iss": "rotating", "sub": "rotating", "aud": "https://as.example.com",
                            "jti": uuid.uuid4().hex, "iat": now, "exp": now + 60},
                           keys["current"], algorithm="ES256", headers={"kid": kid})
        return CC + f"&client_assertion_type={JWT_TYPE}&client_assertion={token}"

    assert (await post(client, sidecar, signed_body("k1")))[0] == 200
    assert len(served) == 1
    keys["current"] = ec_key()  # the client rotates; its jwks_uri now serves k2
    status, _, _ = await post(client, sidecar, signed_body("k2"))
    assert status == 401  # refetched at most once a minute: the old set is still cached
    clock.offset += 61
    assert (await post(client, sidecar, signed_body("k2")))[0] == 200
    assert len(served) == 2
    await runner.cleanup()


# --- reload -------------------------------------------------------------------------------

async def test_registry_swap_under_traffic_fails_no_request(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, world: World) -> None:
    sidecar = await sidecar_factory(clients={"registry_file": str(world.path),
                                             "watch_interval_seconds": 0.05})
    stop = asyncio.Event()
    statuses: list[int] = []

    async def traffic() -> None:
        while not stop.is_set():
            statuses.append((await post(client, sidecar, CC, basic("billing", SECRET)))[0])

    runner = asyncio.create_task(traffic())
    await asyncio.sleep(0.2)
    # Kubernetes-style: the new file appears under another name and a rename swaps it in.
    staged = world.path.with_suffix(".new")
    staged.write_text(registry_text(world.path.parent, world.signer_key, world.device_cert,
                                    world.pki_dn, extra='[[clients]]\nclient_id = "newcomer"\n'
                                          'token_endpoint_auth_method = "none"\n'
                                          'grant_types = ["authorization_code"]\n'))
    staged.replace(world.path)
    for _ in range(100):
        if (await post(client, sidecar, NEWCOMER))[0] == 200:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the new registry was not picked up")
    # A broken registry is refused and the one in force stays.
    world.path.write_text("[[clients]]\nclient_id = 42\n")
    await asyncio.sleep(0.3)
    assert (await post(client, sidecar, NEWCOMER))[0] == 200
    stop.set()
    await runner
    assert statuses and set(statuses) == {200}


# --- the JWT bearer grant (RFC 7523 §2.1, §3) ----------------------------------------------

async def test_jwt_bearer_grant_with_trusted_issuers(client: aiohttp.ClientSession,
                                                     sidecar_factory: SidecarFactory,
                                                     tmp_path: Path) -> None:
    issuer_key = ec_key()
    (tmp_path / "issuer.jwks").write_text(json.dumps({"keys": [public_jwk(issuer_key, "i1")]}))
    sidecar = await sidecar_factory(grants={"jwt_bearer": {"issuers": [
        {"issuer": "https://idp.example", "jwks_file": str(tmp_path / "issuer.jwks")}]}})

    def grant(key: Any, **claims: Any) -> str:
        now = int(time.time())
        token = jwt.encode({"iss": "https://idp.example", "sub": "alice",
                            "aud": "https://as.example.com", "jti": uuid.uuid4().hex,
                            "iat": now, "exp": now + 60, **claims}, key, algorithm="ES256",
                           headers={"kid": "i1"})
        return f"grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion={token}" \
               "&client_id=app"

    body = grant(issuer_key)
    assert (await post(client, sidecar, body))[0] == 200
    context = sidecar.upstream.last.context
    assert context["X-Token-Subject"] == "alice"
    assert context["X-Token-Action"] == "JWT_BEARER"
    status, _, error = await post(client, sidecar, body)
    assert (status, error["error"]) == (400, "invalid_grant")  # replayed
    status, _, error = await post(client, sidecar, grant(ec_key()))
    assert (status, error["error"]) == (400, "invalid_grant")  # not the issuer's key
    assert len(sidecar.upstream.received) == 1
