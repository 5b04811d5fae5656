"""Every token request names its client, registry or not (issue 12, items 3 and 7): a
request with no client identification is 401 invalid_client, never forwarded; a broken Basic
value is 401 with a Basic challenge; another Authorization scheme is said not to be client
authentication; and every Basic challenge names one realm, the issuer (RFC 6749 §2.3,
§3.2.1, §5.2)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import trustme

from tests.conftest import Sidecar, SidecarFactory

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CHALLENGE = 'Basic realm="https://as.example.com", error="invalid_client"'
SECRET = "s3cret-of-billing"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJpZHAiLCJzdWIiOiJ1In0.c2ln"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BROKEN_BASIC = ["Basic", "Basic   ", "basic !!!not-base64", "Basic " + b64("no-colon"),
                "BASIC " + b64(":secret-without-id")]


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    (tmp_path / "billing.secret").write_text(SECRET + "\n")
    path = tmp_path / "clients.toml"
    path.write_text('[[clients]]\nclient_id = "billing"\n'
                    'token_endpoint_auth_method = "client_secret_basic"\n'
                    'client_secret_file = "billing.secret"\n'
                    'grant_types = ["client_credentials"]\n')
    return path


async def post(client: aiohttp.ClientSession, sidecar: Sidecar, body: str,
               headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, Any]]:
    async with client.post(sidecar.token_url, data=body,
                           headers={**FORM, **(headers or {})}) as response:
        return response.status, response.headers, await response.json()


@pytest.mark.parametrize("body", [
    "grant_type=client_credentials&scope=read",
    "grant_type=authorization_code&code=c&redirect_uri=https%3A%2F%2Fapp.example%2Fcb",
    "grant_type=refresh_token&refresh_token=rt",
    "grant_type=password&username=alice&password=pw",
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=t"
    "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
], ids=["client_credentials", "authorization_code", "refresh_token", "password",
        "token-exchange"])
async def test_a_request_naming_no_client_is_401_without_a_registry(
        client: aiohttp.ClientSession, sidecar: Sidecar, body: str) -> None:
    status, headers, answer = await post(client, sidecar, body)
    assert (status, answer["error"]) == (401, "invalid_client")
    assert answer["error_description"] == "The request does not identify the client."
    assert "WWW-Authenticate" not in headers  # the client did not use the header
    assert headers["Cache-Control"] == "no-store"
    assert sidecar.upstream.received == []


async def test_a_bearer_header_is_not_client_authentication(
        client: aiohttp.ClientSession, sidecar: Sidecar) -> None:
    status, headers, answer = await post(client, sidecar, "grant_type=client_credentials",
                                         {"Authorization": "Bearer x"})
    assert (status, answer["error"]) == (401, "invalid_client")
    assert "Bearer scheme is not client authentication" in answer["error_description"]
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert sidecar.upstream.received == []


@pytest.mark.parametrize("with_registry", [False, True], ids=["no-registry", "registry"])
@pytest.mark.parametrize("authorization", BROKEN_BASIC)
async def test_a_broken_basic_value_is_401_with_the_issuer_challenge(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, registry: Path,
        authorization: str, with_registry: bool) -> None:
    sidecar = await sidecar_factory(
        **({"clients": {"registry_file": str(registry)}} if with_registry else {}))
    status, headers, answer = await post(client, sidecar, "grant_type=client_credentials",
                                         {"Authorization": authorization})
    assert (status, answer["error"]) == (401, "invalid_client")
    assert headers["WWW-Authenticate"] == CHALLENGE
    assert sidecar.upstream.received == []


async def test_one_realm_for_a_broken_basic_value_and_a_wrong_secret(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, registry: Path) -> None:
    sidecar = await sidecar_factory(clients={"registry_file": str(registry)})
    challenges = set()
    for authorization in ("Basic " + b64("no-colon"), "Basic " + b64("billing:wrong")):
        status, headers, _ = await post(client, sidecar, "grant_type=client_credentials",
                                        {"Authorization": authorization})
        assert status == 401
        challenges.add(headers["WWW-Authenticate"])
    assert challenges == {CHALLENGE}


async def test_a_request_naming_no_client_is_401_even_when_unknown_clients_are_forwarded(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory, registry: Path) -> None:
    sidecar = await sidecar_factory(clients={"registry_file": str(registry),
                                             "unknown": "forward"})
    status, _, answer = await post(client, sidecar, "grant_type=client_credentials")
    assert (status, answer["error"]) == (401, "invalid_client")
    # An unregistered but named client is still forwarded, as configured.
    status, _, _ = await post(client, sidecar, "grant_type=client_credentials&client_id=new")
    assert status == 200
    assert [r.context["X-Token-Client-Id"] for r in sidecar.upstream.received] == ["new"]


@pytest.fixture(scope="module")
def certificate() -> str:
    pem = trustme.CA().issue_cert("device.example").cert_chain_pems[0].bytes().decode()
    return quote(pem, safe="")  # nginx's $ssl_client_escaped_cert


@pytest.mark.parametrize(("body", "headers"), [
    ("grant_type=client_credentials&client_id=public-app", {}),
    ("grant_type=client_credentials", {"Authorization": "Basic " + b64("billing:" + SECRET)}),
    ("grant_type=client_credentials&client_id=poster&client_secret=x", {}),
    (f"grant_type={quote(JWT_BEARER, safe='')}&assertion={ASSERTION}", {}),  # RFC 7523 §3.1
    # OpenID4VCI 1.0 §6.1: an anonymous wallet.
    ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Apre-authorized_code"
     "&pre-authorized_code=SplxlOBeZQQYbYS6WxSbIA&tx_code=493536", {}),
    ("grant_type=client_credentials", {"OAuth-Client-Attestation": "a.b.c",
                                       "OAuth-Client-Attestation-PoP": "d.e.f"}),
], ids=["client_id", "basic", "post", "jwt-bearer-grant", "pre-authorized-code",
        "attestation-for-the-upstream"])
async def test_a_request_that_names_its_client_is_forwarded_without_a_registry(
        client: aiohttp.ClientSession, sidecar: Sidecar, body: str,
        headers: dict[str, str]) -> None:
    status, _, _ = await post(client, sidecar, body, headers)
    assert status == 200
    assert len(sidecar.upstream.received) == 1


async def test_a_certificate_names_the_client(client: aiohttp.ClientSession, sidecar: Sidecar,
                                              certificate: str) -> None:
    status, _, _ = await post(client, sidecar, "grant_type=client_credentials",
                              {"X-SSL-Client-Cert": certificate})
    assert status == 200
    assert "X-Token-Client-Cert-S256" in sidecar.upstream.last.context
