"""A real nginx running deploy/nginx/token-sidecar-resource.conf: `auth_request` to the
sidecar's check listener in front of an API (a recording server).

Client --HTTPS (optionally mTLS)--> nginx --auth_request from 127.0.0.2--> sidecar check
listener; nginx --> API. The sidecar trusts only 127.0.0.2/32 (nginx's `proxy_bind`), the
proof names https://api.example.com (the public origin), the bindings are in a real Redis.
Shown through real requests: a DPoP call gets through as Bearer with its context and without
its proof; another key, a replay or the token as Bearer get the sidecar's 401 and
WWW-Authenticate through nginx; nonce mode's DPoP-Nonce reaches the client and the retry
passes; a certificate-bound token passes with its certificate only; the check listener down
is a 503 in OAuth JSON."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sidecar.adapters.redis.store import RedisStore
from sidecar.http.app import build_app
from sidecar.http.resource_doors import build_check_app
from tests.conftest import make_settings
from tests.deploy.test_nginx_e2e import Pki, server_files, tls_context, x5t_s256
from tests.deploy.test_nginx_e2e import pki as pki  # noqa: PLC0414 - the PKI fixture, shared
from tests.support.dpop import DpopKey
from tests.support.nginx import free_port, render_resource_config, require_nginx, running_nginx
from tests.support.redis_server import RedisServer
from tests.support.resource import API_PATH, api_proof, bind, resource_settings
from tests.support.servers import RecordingUpstream, start_app

NGINX_SOURCE = "127.0.0.2"


@dataclass
class Front:
    url: str  # https://127.0.0.1:<port>, nginx
    api: RecordingUpstream
    store: RedisStore


FrontFactory = Callable[..., Awaitable[Front]]


@pytest.fixture
async def front_factory(pki: Pki, api: RecordingUpstream, upstream: RecordingUpstream,
                        redis_server_session: RedisServer,
                        tmp_path: Path) -> AsyncIterator[FrontFactory]:
    binary = require_nginx()
    certificate, key = server_files(pki, tmp_path)
    opened: list[Any] = []

    async def start(*, sidecar_running: bool = True, **resource: Any) -> Front:
        store = RedisStore.from_url(redis_server_session.url, f"nginx-rs-{uuid.uuid4().hex}:")
        opened.append(store)
        check = f"127.0.0.1:{free_port()}"
        if sidecar_running:
            settings = make_settings(
                upstream.url, trust={"trusted_proxies": [f"{NGINX_SOURCE}/32"]},
                resource=resource_settings("", prefixes=[], check_listen=check, **resource))
            app = build_app(settings, store=store)
            token_runner, _ = await start_app(app)
            check_runner, _ = await start_app(build_check_app(app),
                                              port=int(check.rpartition(":")[2]))
            opened.extend([check_runner, token_runner])

        def http_context(port: int) -> str:
            return render_resource_config(listen=f"127.0.0.1:{port}", check=check,
                                          api=api.url.removeprefix("http://"),
                                          certificate=certificate, key=key,
                                          proxy_bind=NGINX_SOURCE)

        nginx = running_nginx(binary, tmp_path / f"nginx-{len(opened)}", http_context)
        opened.append(nginx)
        started = await nginx.__aenter__()
        return Front(f"https://127.0.0.1:{started.port}", api, store)

    yield start
    for item in reversed(opened):
        if isinstance(item, web.AppRunner):
            await item.cleanup()
        elif isinstance(item, RedisStore):
            await item.close()
        else:
            await item.__aexit__(None, None, None)


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes


async def call(front: Front, context: ssl.SSLContext, headers: dict[str, str],
               method: str = "GET") -> Answer:
    connector = aiohttp.TCPConnector(ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session, session.request(
            method, front.url + API_PATH, headers=headers) as response:
        return Answer(response.status, response.headers, await response.read())


async def test_a_dpop_call_reaches_the_api_as_bearer_with_its_context(
        front_factory: FrontFactory, pki: Pki) -> None:
    front = await front_factory()
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(front.store, token, jkt=key.jkt, client_id="app", scope="read")
    answer = await call(front, tls_context(pki, with_client_certificate=False), {
        "Authorization": f"DPoP {token}", "DPoP": api_proof(key, token, htm="POST"),
        "X-Token-Client-Id": "forged", "X-Token-DPoP-JKT": "forged"}, method="POST")
    assert answer.status == 200
    reached = front.api.last
    assert (reached.method, reached.path) == ("POST", API_PATH)
    assert reached.headers["Authorization"] == f"Bearer {token}"
    assert "DPoP" not in reached.headers
    assert reached.headers["X-Token-Client-Id"] == "app"
    assert reached.headers["X-Token-DPoP-JKT"] == key.jkt
    assert reached.headers["X-Token-Scope"] == "read"
    assert "WWW-Authenticate" not in answer.headers


async def test_refusals_carry_the_sidecars_challenge_through_nginx(
        front_factory: FrontFactory, pki: Pki) -> None:
    front = await front_factory()
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(front.store, token, jkt=key.jkt)
    context = tls_context(pki, with_client_certificate=False)
    other = await call(front, context, {"Authorization": f"DPoP {token}",
                                        "DPoP": api_proof(DpopKey(), token)})
    assert other.status == 401
    assert other.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert 'algs="' in other.headers["WWW-Authenticate"]
    proof = api_proof(key, token)
    assert (await call(front, context, {"Authorization": f"DPoP {token}",
                                        "DPoP": proof})).status == 200
    replay = await call(front, context, {"Authorization": f"DPoP {token}", "DPoP": proof})
    assert replay.status == 401
    bearer = await call(front, context, {"Authorization": f"Bearer {token}"})
    assert bearer.status == 401
    assert bearer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert len(front.api.received) == 1


async def test_nonce_mode_through_nginx(front_factory: FrontFactory, pki: Pki,
                                        tmp_path: Path) -> None:
    secret = tmp_path / "nonce"
    secret.write_text("q" * 40)
    front = await front_factory(nonce_required=True, nonce_secret_file=str(secret))
    key, token = DpopKey(), "at-" + uuid.uuid4().hex
    await bind(front.store, token, jkt=key.jkt)
    context = tls_context(pki, with_client_certificate=False)
    first = await call(front, context, {"Authorization": f"DPoP {token}",
                                        "DPoP": api_proof(key, token)})
    assert first.status == 401
    assert 'error="use_dpop_nonce"' in first.headers["WWW-Authenticate"]
    nonce = first.headers["DPoP-Nonce"]
    retry = await call(front, context, {"Authorization": f"DPoP {token}",
                                        "DPoP": api_proof(key, token, nonce=nonce)})
    assert retry.status == 200


async def test_a_certificate_bound_token_needs_its_certificate(
        front_factory: FrontFactory, pki: Pki) -> None:
    front = await front_factory()
    await bind(front.store, "at-cert", x5t_s256=x5t_s256(pki.client_pem()))
    with_cert = await call(front, tls_context(pki, with_client_certificate=True),
                           {"Authorization": "Bearer at-cert"})
    assert with_cert.status == 200
    assert front.api.last.headers["X-Token-Client-Cert-S256"] == x5t_s256(pki.client_pem())
    without = await call(front, tls_context(pki, with_client_certificate=False),
                         {"Authorization": "Bearer at-cert"})
    assert without.status == 401


async def test_the_check_listener_down_is_a_503_in_oauth_json(
        front_factory: FrontFactory, pki: Pki) -> None:
    front = await front_factory(sidecar_running=False)
    answer = await call(front, tls_context(pki, with_client_certificate=False),
                        {"Authorization": "Bearer anything"})
    assert answer.status == 503
    assert b'"temporarily_unavailable"' in answer.body
    assert not front.api.received
