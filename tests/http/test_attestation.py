"""Attestation-based client authentication through real HTTP
(draft-ietf-oauth-attestation-based-client-auth): both modes, every refusal, the challenge
flow end to end, refresh tokens bound to the instance key, the legacy form."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sidecar.core.jose.keys import thumbprint
from tests.conftest import Sidecar, SidecarFactory

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
AS = "https://as.example.com"
ATTESTER = "https://attester.example.com"
CHALLENGE_SECRET = "an-attestation-challenge-secret-0123456789"
BODY = "grant_type=authorization_code&code=c&client_id=wallet-app"


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    return json.loads(ECAlgorithm.to_jwk(key.public_key()))  # type: ignore[no-any-return]


@dataclass
class Instance:
    """One installation of the wallet: its instance key, attested by the attester."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def jkt(self) -> str:
        return thumbprint(public_jwk(self.key))

    def attestation(self, attester: ec.EllipticCurvePrivateKey, *, sub: str = "wallet-app",
                    typ: str = "oauth-client-attestation+jwt", **claims: Any) -> str:
        now = int(time.time())
        return jwt.encode({"sub": sub, "iat": now, "exp": now + 3600,
                           "cnf": {"jwk": public_jwk(self.key)}, **claims}, attester,
                          algorithm="ES256", headers={"typ": typ, "kid": "attester-1"})

    def pop(self, *, aud: str = AS, challenge: str | None = None,
            key: ec.EllipticCurvePrivateKey | None = None, jti: str | None = None) -> str:
        claims: dict[str, Any] = {"aud": aud, "jti": jti or uuid.uuid4().hex,
                                  "iat": int(time.time())}
        if challenge is not None:
            claims["challenge"] = challenge
        return jwt.encode(claims, key or self.key, algorithm="ES256",
                          headers={"typ": "oauth-client-attestation-pop+jwt"})

    def dpop(self, nonce: str | None = None,
             key: ec.EllipticCurvePrivateKey | None = None) -> str:
        signer = key or self.key
        claims: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": "POST",
                                  "htu": f"{AS}/token", "iat": int(time.time())}
        if nonce is not None:
            claims["nonce"] = nonce
        return jwt.encode(claims, signer, algorithm="ES256",
                          headers={"typ": "dpop+jwt", "jwk": public_jwk(signer)})


@pytest.fixture
def attester_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def attestation_config(tmp_path: Path, attester_key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    (tmp_path / "attester.jwks.json").write_text(json.dumps(
        {"keys": [{**public_jwk(attester_key), "kid": "attester-1"}]}))
    (tmp_path / "challenge-secret").write_text(CHALLENGE_SECRET + "\n")
    return {"enabled": True, "challenge_secret_file": str(tmp_path / "challenge-secret"),
            "attesters": [{"issuer": ATTESTER, "jwks_file": str(tmp_path / "attester.jwks.json"),
                           "clients": ["wallet-app"]}]}


@pytest.fixture
async def sidecar(sidecar_factory: SidecarFactory,
                  attestation_config: dict[str, Any]) -> Sidecar:
    return await sidecar_factory(attestation=attestation_config)


async def post(client: aiohttp.ClientSession, sidecar: Sidecar, headers: dict[str, str],
               body: str = BODY) -> tuple[int, Any, dict[str, Any]]:
    async with client.post(sidecar.token_url, data=body,
                           headers={**FORM, **headers}) as response:
        return response.status, response.headers, await response.json()


def headers_for(instance: Instance, attester: ec.EllipticCurvePrivateKey,
                **pop: Any) -> dict[str, str]:
    return {"OAuth-Client-Attestation": instance.attestation(attester),
            "OAuth-Client-Attestation-PoP": instance.pop(**pop)}


async def test_attested_client_is_forwarded_with_its_instance(
        client: aiohttp.ClientSession, sidecar: Sidecar,
        attester_key: ec.EllipticCurvePrivateKey) -> None:
    instance = Instance()
    status, headers, _ = await post(client, sidecar, headers_for(instance, attester_key))
    assert status == 200
    context = sidecar.upstream.last.context
    assert context["X-Token-Client-Auth-Method"] == "attest_jwt_client_auth"
    assert context["X-Token-Client-Authenticated"] == "true"
    assert context["X-Token-Client-Id"] == "wallet-app"
    assert context["X-Token-Attestation-Issuer"] == ATTESTER
    assert context["X-Token-Attestation-JKT"] == instance.jkt
    # Challenges are on: every token answer carries a fresh one.
    assert headers["OAuth-Client-Attestation-Challenge"]


async def test_combined_dpop_mode(client: aiohttp.ClientSession, sidecar: Sidecar,
                                  attester_key: ec.EllipticCurvePrivateKey) -> None:
    instance = Instance()
    attestation = instance.attestation(attester_key)
    status, _, _ = await post(client, sidecar, {"OAuth-Client-Attestation": attestation,
                                                "DPoP": instance.dpop()})
    assert status == 200
    context = sidecar.upstream.last.context
    assert context["X-Token-Attestation-JKT"] == instance.jkt
    assert context["X-Token-DPoP-JKT"] == instance.jkt
    # The DPoP key must be the attested instance key.
    status, _, body = await post(client, sidecar, {
        "OAuth-Client-Attestation": attestation,
        "DPoP": instance.dpop(key=ec.generate_private_key(ec.SECP256R1()))})
    assert status == 400
    assert body["error"] == "invalid_client_attestation"


async def test_challenge_flow_end_to_end(client: aiohttp.ClientSession,
                                         sidecar_factory: SidecarFactory,
                                         attestation_config: dict[str, Any],
                                         attester_key: ec.EllipticCurvePrivateKey) -> None:
    sidecar = await sidecar_factory(attestation={**attestation_config,
                                                 "challenge_required": True})
    instance = Instance()
    # 1. No challenge: refused, with one to use.
    status, headers, body = await post(client, sidecar, headers_for(instance, attester_key))
    assert (status, body["error"]) == (400, "use_attestation_challenge")
    assert headers["OAuth-Client-Attestation-Challenge"]
    assert headers["Cache-Control"] == "no-store"
    # 2. The challenge endpoint hands one out.
    async with client.post(sidecar.url + "/attestation-challenge") as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        challenge = (await response.json())["attestation_challenge"]
    async with client.get(sidecar.url + "/attestation-challenge") as response:
        assert response.status == 405
    # 3. With it, the request passes.
    status, _, _ = await post(client, sidecar,
                              headers_for(instance, attester_key, challenge=challenge))
    assert status == 200
    # A made-up challenge is refused.
    status, _, body = await post(client, sidecar,
                                 headers_for(instance, attester_key, challenge="made-up"))
    assert (status, body["error"]) == (400, "use_attestation_challenge")


async def test_replayed_pop_is_refused(client: aiohttp.ClientSession, sidecar: Sidecar,
                                       attester_key: ec.EllipticCurvePrivateKey) -> None:
    headers = headers_for(Instance(), attester_key)
    assert (await post(client, sidecar, headers))[0] == 200
    status, _, body = await post(client, sidecar, headers)
    assert status == 400
    assert body["error"] == "invalid_client_attestation"
    assert len(sidecar.upstream.received) == 1


def _refusals(attester: ec.EllipticCurvePrivateKey) -> list[tuple[str, dict[str, str], str, int]]:
    instance, stranger = Instance(), ec.generate_private_key(ec.SECP256R1())
    attestation = instance.attestation(attester)
    return [
        ("attestation by an untrusted attester",
         {"OAuth-Client-Attestation": instance.attestation(stranger),
          "OAuth-Client-Attestation-PoP": instance.pop()}, "invalid_client_attestation", 400),
        ("wrong typ", {"OAuth-Client-Attestation": instance.attestation(attester, typ="jwt"),
                       "OAuth-Client-Attestation-PoP": instance.pop()},
         "invalid_client_attestation", 400),
        ("expired attestation",
         {"OAuth-Client-Attestation": instance.attestation(attester, exp=int(time.time()) - 600),
          "OAuth-Client-Attestation-PoP": instance.pop()}, "use_fresh_attestation", 400),
        ("PoP signed by another key",
         {"OAuth-Client-Attestation": attestation,
          "OAuth-Client-Attestation-PoP": instance.pop(key=stranger)},
         "invalid_client_attestation", 400),
        ("PoP for another audience",
         {"OAuth-Client-Attestation": attestation,
          "OAuth-Client-Attestation-PoP": instance.pop(aud="https://other.example")},
         "invalid_client_attestation", 400),
        ("PoP without attestation", {"OAuth-Client-Attestation-PoP": instance.pop()},
         "invalid_client_attestation", 400),
        ("attested for another client",
         {"OAuth-Client-Attestation": instance.attestation(attester, sub="other-app"),
          "OAuth-Client-Attestation-PoP": instance.pop()}, "invalid_client", 401),
    ]


@pytest.mark.parametrize("index", range(7))
async def test_refusals(client: aiohttp.ClientSession, sidecar: Sidecar,
                        attester_key: ec.EllipticCurvePrivateKey, index: int) -> None:
    why, headers, code, status = _refusals(attester_key)[index]
    got, _, body = await post(client, sidecar, headers)
    assert (got, body["error"]) == (status, code), why
    assert sidecar.upstream.received == []


async def test_two_attestation_headers_are_refused(
        client: aiohttp.ClientSession, sidecar: Sidecar,
        attester_key: ec.EllipticCurvePrivateKey) -> None:
    instance = Instance()
    async with client.post(sidecar.token_url, data=BODY, headers=[
            ("Content-Type", FORM["Content-Type"]),
            ("OAuth-Client-Attestation", instance.attestation(attester_key)),
            ("OAuth-Client-Attestation", instance.attestation(attester_key)),
            ("OAuth-Client-Attestation-PoP", instance.pop())]) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_client_attestation"


async def test_attestation_and_a_secret_is_invalid_request(
        client: aiohttp.ClientSession, sidecar: Sidecar,
        attester_key: ec.EllipticCurvePrivateKey) -> None:
    status, _, body = await post(client, sidecar, headers_for(Instance(), attester_key),
                                 BODY + "&client_secret=s")
    assert (status, body["error"]) == (400, "invalid_request")


async def test_attestation_as_additional_signal(
        client: aiohttp.ClientSession, sidecar_factory: SidecarFactory,
        attestation_config: dict[str, Any], attester_key: ec.EllipticCurvePrivateKey,
        tmp_path: Path) -> None:
    (tmp_path / "wallet.secret").write_text("wallet-secret-value\n")
    registry = tmp_path / "clients.toml"
    registry.write_text('''
[[clients]]
client_id = "wallet-app"
token_endpoint_auth_method = "client_secret_post"
client_secret_file = "wallet.secret"
grant_types = ["authorization_code", "refresh_token"]
attestation_additional_signal = true
''')
    sidecar = await sidecar_factory(attestation=attestation_config,
                                    clients={"registry_file": str(registry)})
    instance = Instance()
    status, _, _ = await post(client, sidecar, headers_for(instance, attester_key),
                              BODY + "&client_secret=wallet-secret-value")
    assert status == 200
    context = sidecar.upstream.last.context
    assert context["X-Token-Client-Auth-Method"] == "client_secret_post"
    assert context["X-Token-Attestation-JKT"] == instance.jkt


async def test_refresh_tokens_are_bound_to_the_instance(
        client: aiohttp.ClientSession, sidecar: Sidecar,
        attester_key: ec.EllipticCurvePrivateKey) -> None:
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "Bearer",
                                   "refresh_token": "rt-wallet"}
    instance, other = Instance(), Instance()
    assert (await post(client, sidecar, headers_for(instance, attester_key)))[0] == 200
    refresh = "grant_type=refresh_token&refresh_token=rt-wallet&client_id=wallet-app"
    status, _, body = await post(client, sidecar, headers_for(other, attester_key), refresh)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await post(client, sidecar, headers_for(instance, attester_key), refresh))[0] == 200


async def test_legacy_client_assertion_form(client: aiohttp.ClientSession,
                                            sidecar_factory: SidecarFactory,
                                            attestation_config: dict[str, Any],
                                            attester_key: ec.EllipticCurvePrivateKey) -> None:
    instance = Instance()
    legacy = (BODY + "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3A"
              "client-assertion-type%3Ajwt-client-attestation&client_assertion="
              + instance.attestation(attester_key) + "~" + instance.pop())
    off = await sidecar_factory(attestation=attestation_config)
    status, _, body = await post(client, off, {}, legacy)
    assert (status, body["error"]) == (401, "invalid_client")
    on = await sidecar_factory(attestation={**attestation_config,
                                            "accept_legacy_client_assertion": True})
    status, _, _ = await post(client, on, {}, legacy)
    assert status == 200
    assert on.upstream.last.context["X-Token-Attestation-JKT"] == instance.jkt
