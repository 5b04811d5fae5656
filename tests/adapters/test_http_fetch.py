"""The aiohttp `Fetcher` (sidecar.adapters.http_fetch) against real HTTP(S) servers, and a
`jwks_uri` whose key rotates, followed by the sidecar's key source without a restart."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from sidecar.adapters.client_secrets import CachingSecretVerifier
from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.http_fetch import AiohttpFetcher
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.core.client_authentication.methods import authenticate
from sidecar.core.client_authentication.policy import AuthenticatedClient, ClientAuthPolicy
from sidecar.core.clients.loading import registry_from_mapping
from sidecar.core.credentials import JWT_BEARER_ASSERTION, extract_client_credentials
from sidecar.core.jwt_bearer import (
    JwtBearerAssertion,
    JwtBearerPolicy,
    load_issuers,
    verify_jwt_bearer,
)
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.ports import FetchError
from tests.support.fakes import FakeClock
from tests.support.servers import free_port, start_app

ISSUER = "https://as.example.com"
ENDPOINT = "https://as.example.com/token"


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "ES256"}


@dataclass
class KeyServer:
    """A key server whose signing key can be rotated while it runs."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = "key-1"
    hits: int = 0
    url: str = ""
    other_host_url: str = ""

    def rotate(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.kid = f"key-{int(self.kid.split('-')[1]) + 1}"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/jwks", self._jwks)
        big = b"[" + b"1," * 10**6 + b"1]"
        app.router.add_get("/notfound", answer(lambda: web.Response(status=404)))
        app.router.add_get("/notjson", answer(lambda: web.Response(text="<html>")))
        app.router.add_get("/big", answer(lambda: web.Response(body=big)))
        app.router.add_get("/chunked", self._chunked)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/redirect-same", redirect_to("/jwks"))
        app.router.add_get("/redirect-other", self._redirect_other)
        app.router.add_get("/redirect-loop", redirect_to("/redirect-loop"))
        app.router.add_get("/redirect-ftp", redirect_to("ftp://127.0.0.1/jwks"))
        app.router.add_get("/redirect-empty", answer(lambda: web.Response(status=302)))
        return app

    async def _jwks(self, request: web.Request) -> web.Response:
        self.hits += 1
        assert "jwk-set+json" in request.headers["Accept"]
        return web.json_response({"keys": [public_jwk(self.key, self.kid)]},
                                 content_type="application/jwk-set+json")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(100):
            await response.write(b" " * 4096)
        await response.write_eof()
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def _redirect_other(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.other_host_url + "/jwks")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def answer(make: Callable[[], web.StreamResponse]) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return make()

    return handler


def redirect_to(location: str) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(location)

    return handler


@pytest.fixture
async def key_server() -> AsyncIterator[KeyServer]:
    server = KeyServer()
    runner, url = await start_app(server.app())
    server.url = url
    # The same server under another host name: a redirect there leaves the origin host.
    server.other_host_url = url.replace("127.0.0.1", "localhost")
    yield server
    await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[AiohttpFetcher]:
    owned = AiohttpFetcher(timeout_seconds=1.0, max_bytes=64 * 1024)
    yield owned
    await owned.close()


async def test_fetches_json(key_server: KeyServer, fetcher: AiohttpFetcher) -> None:
    document = await fetcher.get_json(key_server.url + "/jwks")
    assert isinstance(document, dict) and document["keys"][0]["kid"] == "key-1"


async def test_follows_a_redirect_on_the_same_host(key_server: KeyServer,
                                                   fetcher: AiohttpFetcher) -> None:
    document = await fetcher.get_json(key_server.url + "/redirect-same")
    assert isinstance(document, dict) and "keys" in document


@pytest.mark.parametrize(("path", "message"), [
    ("/notfound", "HTTP status 404"),
    ("/notjson", "not JSON"),
    ("/big", "larger than 65536 bytes"),
    ("/chunked", "larger than 65536 bytes"),
    ("/slow", "no answer within 1 s"),
    ("/redirect-other", "redirected to another host"),
    ("/redirect-loop", "more than 3 redirects"),
    ("/redirect-ftp", "only absolute http and https"),
    ("/redirect-empty", "redirect without Location"),
])
async def test_failures_are_fetch_errors(key_server: KeyServer, fetcher: AiohttpFetcher,
                                         path: str, message: str) -> None:
    with pytest.raises(FetchError, match=message):
        await fetcher.get_json(key_server.url + path)


async def test_unreachable_and_bad_urls(fetcher: AiohttpFetcher) -> None:
    with pytest.raises(FetchError, match="ClientConnectorError"):
        await fetcher.get_json(f"http://127.0.0.1:{free_port()}/jwks")
    with pytest.raises(FetchError, match="only absolute http and https"):
        await fetcher.get_json("file:///etc/passwd")


async def test_https_and_no_downgrade(key_server: KeyServer, tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ssl)
    app = web.Application()
    app.router.add_get("/jwks", answer(lambda: web.json_response({"keys": []})))
    app.router.add_get("/down", redirect_to(key_server.url + "/jwks"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl)
    await site.start()
    port = runner.addresses[0][1]
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl))
    try:
        https = AiohttpFetcher(session)
        assert await https.get_json(f"https://127.0.0.1:{port}/jwks") == {"keys": []}
        with pytest.raises(FetchError, match="from https to http"):
            await https.get_json(f"https://127.0.0.1:{port}/down")
        await https.close()  # not its session: left open
        assert not session.closed
        untrusting = AiohttpFetcher()
        with pytest.raises(FetchError, match="Certificate"):
            await untrusting.get_json(f"https://127.0.0.1:{port}/jwks")
        await untrusting.close()
    finally:
        await session.close()
        await runner.cleanup()


# ---------------------------------------------------------------------------------------
# The key rotates at a real jwks_uri; the sidecar follows without restart.


def client_assertion(server: KeyServer, now: float) -> str:
    claims = {"iss": "rotating", "sub": "rotating", "aud": ISSUER, "exp": int(now) + 60,
              "iat": int(now), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, server.key, algorithm="ES256", headers={"kid": server.kid})


async def test_private_key_jwt_follows_a_rotating_jwks_uri(key_server: KeyServer,
                                                           fetcher: AiohttpFetcher,
                                                           tmp_path: Path) -> None:
    clock = FakeClock()
    registry = registry_from_mapping({"clients": [{
        "client_id": "rotating", "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": key_server.url + "/jwks"}]}, tmp_path, LOCAL_FILES)
    source = CachingJwksSource(fetcher, clock)
    secrets = CachingSecretVerifier()
    policy = ClientAuthPolicy(ISSUER, ENDPOINT)

    async def attempt() -> object:
        token = client_assertion(key_server, clock.now())
        credentials = extract_client_credentials(None, FormParams({
            "client_assertion": (token,), "client_assertion_type": (JWT_BEARER_ASSERTION,)}),
            False, realm=ISSUER)
        assert not isinstance(credentials, OAuthError)
        return await authenticate(credentials, None, registry, policy=policy, now=clock.now(),
                                  jwks=source, secrets=secrets)

    assert isinstance(await attempt(), AuthenticatedClient)
    assert key_server.hits == 1
    assert isinstance(await attempt(), AuthenticatedClient)
    assert key_server.hits == 1  # cached

    # The key server rotates its key. Within a minute of the last fetch the new kid stays
    # unknown (made-up kids must not turn into traffic towards the key server)...
    key_server.rotate()
    clock.t += 5
    for _ in range(3):
        refused = await attempt()
        assert isinstance(refused, OAuthError)
        assert refused.result_code == "client.assertion_unknown_key"
    assert key_server.hits == 1
    # ...then one fetch picks the new key up, with no restart.
    clock.t += 56
    assert isinstance(await attempt(), AuthenticatedClient)
    assert isinstance(await attempt(), AuthenticatedClient)
    assert key_server.hits == 2


async def test_jwt_bearer_issuer_follows_a_rotating_jwks_uri(key_server: KeyServer,
                                                             fetcher: AiohttpFetcher,
                                                             tmp_path: Path) -> None:
    clock = FakeClock()
    issuers = load_issuers([{"issuer": "https://idp.example.com",
                             "jwks_uri": key_server.url + "/jwks"}], tmp_path, LOCAL_FILES)
    policy = JwtBearerPolicy({i.issuer: i for i in issuers}, frozenset({ISSUER, ENDPOINT}))
    source = CachingJwksSource(fetcher, clock)

    async def attempt() -> object:
        claims = {"iss": "https://idp.example.com", "sub": "alice", "aud": ENDPOINT,
                  "exp": int(clock.t) + 60, "jti": uuid.uuid4().hex}
        token = jwt.encode(claims, key_server.key, algorithm="ES256",
                           headers={"kid": key_server.kid})
        return await verify_jwt_bearer(token, policy=policy, now=clock.now(), jwks=source)

    assert isinstance(await attempt(), JwtBearerAssertion)
    key_server.rotate()
    clock.t += 61
    result = await attempt()
    assert isinstance(result, JwtBearerAssertion) and result.subject == "alice"
    assert key_server.hits == 2
