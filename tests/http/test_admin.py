"""The admin application: health endpoints and Prometheus metrics, through real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from sidecar.adapters.redis.store import RedisStore
from sidecar.http.app import build_admin_app, build_app
from sidecar.http.runtime import STATE
from sidecar.logs import FIELDS_ATTRIBUTE
from sidecar.ports import ReplayStore
from tests.conftest import TOKEN_URL_PUBLIC, make_settings
from tests.support.dpop import DpopKey
from tests.support.raw_http import send_raw
from tests.support.redis_server import RedisServer
from tests.support.servers import RecordingUpstream, start_app

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = "grant_type=client_credentials&client_id=app"


@dataclass
class Pair:
    token_url: str
    admin_url: str
    app: web.Application


PairFactory = Callable[..., Awaitable[Pair]]


@pytest.fixture
async def pair_factory(upstream: RecordingUpstream) -> AsyncIterator[PairFactory]:
    runners = []

    async def start(replay_store: ReplayStore | None = None,
                    **sections: dict[str, Any]) -> Pair:
        settings = make_settings(upstream.url, **sections)
        app = build_app(settings, store=replay_store)
        runner, url = await start_app(app)
        admin_runner, admin_url = await start_app(build_admin_app(app))
        runners.extend([runner, admin_runner])
        return Pair(url + "/token", admin_url, app)

    yield start
    for runner in runners:
        await runner.cleanup()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(client: aiohttp.ClientSession, pair: Pair) -> Samples:
    async with client.get(pair.admin_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(await response.text())


async def test_health_endpoints(client: aiohttp.ClientSession, pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    for path in ("/livez", "/healthz", "/startupz", "/readyz"):
        async with client.get(pair.admin_url + path) as response:
            assert response.status == 200, path
    pair.app[STATE].draining = True
    async with client.get(pair.admin_url + "/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"]["draining"] == "yes"
    async with client.get(pair.admin_url + "/livez") as response:
        assert response.status == 200


async def test_admin_paths_are_not_on_the_token_port(
        client: aiohttp.ClientSession, pair_factory: PairFactory,
        upstream: RecordingUpstream) -> None:
    pair = await pair_factory()
    async with client.get(pair.token_url.replace("/token", "/metrics")) as response:
        assert response.status == 200  # the upstream's answer: passed through
    assert upstream.last.path == "/metrics"


async def test_readyz_reports_the_store(client: aiohttp.ClientSession, pair_factory: PairFactory,
                                        redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "ready:")
    pair = await pair_factory(replay_store=store)
    async with client.get(pair.admin_url + "/readyz") as response:
        assert response.status == 200
    redis_server.kill()
    async with client.get(pair.admin_url + "/readyz") as response:
        assert response.status == 503
        assert (await response.json())["checks"]["store"] == "unreachable"
    redis_server.restart()
    async with client.get(pair.admin_url + "/readyz") as response:
        assert response.status == 200
    await store.close()


async def test_request_metrics(client: aiohttp.ClientSession, pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    for body, headers in [(CC, {}), (CC, {"DPoP": proof}), (CC, {"DPoP": proof}),
                          ("grant_type=magic&client_id=app", {}), (CC + "&scope=a&scope=b", {})]:
        async with client.post(pair.token_url, data=body, headers={**FORM, **headers}):
            pass
    found = await scrape(client, pair)

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("token_sidecar_requests_total", action="OK", grant_type="client_credentials",
                 result_code="token.ok") == 2
    assert value("token_sidecar_requests_total", action="BAD_REQUEST",
                 grant_type="client_credentials", result_code="dpop.jti_replayed") == 1
    # An unknown grant type is counted as "other": label values never come from the client.
    assert value("token_sidecar_requests_total", action="BAD_REQUEST", grant_type="other",
                 result_code="grant.unsupported") == 1
    assert value("token_sidecar_requests_total", action="BAD_REQUEST", grant_type="",
                 result_code="request.duplicate_parameter") == 1
    assert value("token_sidecar_dpop_proofs_total", outcome="accepted") == 1
    assert value("token_sidecar_dpop_proofs_total", outcome="dpop.jti_replayed") == 1
    assert value("token_sidecar_replays_rejected_total", kind="dpop") == 1
    assert value("token_sidecar_upstream_responses_total", status_class="2xx") == 2
    assert value("token_sidecar_upstream_token_type_mismatches_total", handling="rewrite") == 1
    assert value("token_sidecar_request_duration_seconds_count", action="OK") == 2
    assert value("token_sidecar_store_operation_duration_seconds_count",
                 operation="first_use") == 2
    assert value("token_sidecar_in_flight_requests") == 0
    assert any(name == "token_sidecar_build_info" for name, _ in found)
    # No label carries a value the client chose (client ids are off by default).
    assert not any(dict(labels).get("client_id") for _, labels in found)
    assert not any("magic" in str(labels) for _, labels in found)


async def test_store_errors_are_counted(client: aiohttp.ClientSession, pair_factory: PairFactory,
                                        redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url, "errors:")
    pair = await pair_factory(replay_store=store)
    redis_server.kill()
    async with client.post(pair.token_url, data=CC,
                           headers={**FORM, "DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)}) as r:
        assert r.status == 503
    found = await scrape(client, pair)
    assert found[("token_sidecar_requests_total", (("action", "INTERNAL_SERVER_ERROR"),
                                                    ("grant_type", "client_credentials"),
                                                    ("result_code", "store.unavailable")))] == 1
    assert found[("token_sidecar_store_errors_total", (("operation", "first_use"),))] == 1
    await store.close()


async def test_refused_request_targets_are_counted(client: aiohttp.ClientSession,
                                                   pair_factory: PairFactory) -> None:
    pair = await pair_factory()
    base = pair.token_url.removesuffix("/token")
    for target in ("/a/../b", "/token%2F", "/x%2fy", "http://as.example.com/token",
                   "/token?grant_type=password"):
        assert (await send_raw(base, target, body=CC.encode(), headers=FORM)).status == 400
    found = await scrape(client, pair)

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    refused = "token_sidecar_request_targets_refused_total"
    assert value(refused, result_code="request.path_dot_segment") == 1
    assert value(refused, result_code="request.path_encoded_delimiter") == 2
    assert value(refused, result_code="request.target_form") == 1
    # On the token path a query refusal is a token request refused like any other.
    assert value("token_sidecar_requests_total", action="BAD_REQUEST", grant_type="",
                 result_code="request.query_token_parameter") == 1


@pytest.mark.parametrize("case", [
    ("grant_type=authorization_code&code=c&client_id=app&code_verifier=short", {},
     "authorization_code", "pkce.code_verifier_syntax"),
    (CC + "&scope=%22read%22", {}, "client_credentials", "scope.syntax"),
    (CC + "&resource=relative%2Fpath", {}, "client_credentials", "resource.not_absolute"),
    (CC, {"X-SSL-Client-Cert": "not a certificate"}, "client_credentials", None),
    ("grant_type=magic&client_id=app", {}, "magic", "grant.unsupported"),
    # A CR/LF must not split a human log line: printable ASCII only.
    ("grant_type=magic%0D%0Aforged%3Dyes&client_id=app", {}, "magic??forged=yes",
     "grant.unsupported"),
], ids=["pkce", "scope", "resource", "certificate-header", "unknown-grant", "crlf"])
async def test_grant_level_refusals_carry_the_grant_type_presented(
        client: aiohttp.ClientSession, pair_factory: PairFactory, caplog: pytest.LogCaptureFixture,
        case: tuple[str, dict[str, str], str, str | None]) -> None:
    body, headers, grant_type, result_code = case
    caplog.set_level(logging.INFO, logger="token_sidecar.access")
    pair = await pair_factory()
    async with client.post(pair.token_url, data=body, headers={**FORM, **headers}) as response:
        assert response.status == 400
    [line] = [getattr(r, FIELDS_ATTRIBUTE) for r in caplog.records
              if r.name == "token_sidecar.access"]
    assert line["grant_type"] == grant_type
    if result_code is not None:
        assert line["result_code"] == result_code
    found = await scrape(client, pair)
    counted = {dict(labels)["grant_type"] for name, labels in found
               if name == "token_sidecar_requests_total"}
    known = grant_type in ("authorization_code", "client_credentials")
    assert counted == {grant_type if known else "other"}


async def test_client_id_label_takes_only_registered_ids(
        client: aiohttp.ClientSession, pair_factory: PairFactory, tmp_path: Path) -> None:
    registry = tmp_path / "clients.toml"
    registry.write_text('[[clients]]\nclient_id = "app"\ntoken_endpoint_auth_method = "none"\n'
                        'grant_types = ["authorization_code"]\n')
    pair = await pair_factory(metrics={"client_id_label": True},
                              clients={"registry_file": str(registry)})
    for client_id in ("app", "attacker-chosen-1", "attacker-chosen-2"):
        async with client.post(pair.token_url, headers=FORM,
                               data=f"grant_type=client_credentials&client_id={client_id}"):
            pass
    found = await scrape(client, pair)
    labels = {dict(labels).get("client_id") for name, labels in found
              if name == "token_sidecar_requests_total"}
    assert labels == {"app", "other"}


async def dpop_statuses(client: aiohttp.ClientSession, pair: Pair,
                        proofs: list[str]) -> list[int]:
    statuses = []
    for proof in proofs:
        async with client.post(pair.token_url, data=CC,
                               headers={**FORM, "DPoP": proof}) as response:
            statuses.append(response.status)
    return statuses


async def test_a_full_memory_store_that_evicts_is_counted(client: aiohttp.ClientSession,
                                                         pair_factory: PairFactory) -> None:
    pair = await pair_factory(store={"memory_max_entries": 2})
    key = DpopKey()
    first, *others = [key.proof(TOKEN_URL_PUBLIC) for _ in range(3)]
    # The later proofs evict the first; a replay of the first then gets in (the trade-off
    # `memory_when_full = "evict"` makes, which the counter exposes).
    assert await dpop_statuses(client, pair, [first, *others, first]) == [200, 200, 200, 200]
    found = await scrape(client, pair)
    assert found[("token_sidecar_store_evictions_total", ())] >= 2


@pytest.mark.parametrize("failure_mode", ["closed", "open"])
async def test_a_full_memory_store_that_refuses_never_accepts_a_replay(
        client: aiohttp.ClientSession, pair_factory: PairFactory, upstream: RecordingUpstream,
        failure_mode: str) -> None:
    pair = await pair_factory(store={"memory_max_entries": 2, "memory_when_full": "refuse",
                                     "failure_mode": failure_mode})
    key = DpopKey()
    first, *others = [key.proof(TOKEN_URL_PUBLIC) for _ in range(3)]
    statuses = await dpop_statuses(client, pair, [first, *others])
    assert statuses[0] == 200
    assert statuses[-1] == 503  # full (each request keeps one entry or more)
    forwarded = len(upstream.received)
    async with client.post(pair.token_url, data=CC,
                           headers={**FORM, "DPoP": others[-1]}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"] == "temporarily_unavailable"
    async with client.post(pair.token_url, data=CC,
                           headers={**FORM, "DPoP": first}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_dpop_proof"
    assert len(upstream.received) == forwarded
    found = await scrape(client, pair)
    assert found[("token_sidecar_requests_total", (("action", "INTERNAL_SERVER_ERROR"),
                                                    ("grant_type", "client_credentials"),
                                                    ("result_code", "store.full")))] >= 2
    assert found.get(("token_sidecar_store_evictions_total", ()), 0) == 0
