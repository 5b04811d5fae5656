"""The resource side's introspection source (sidecar.adapters.introspection_source; RFC 7662)
against a real introspection endpoint over HTTP: credentials, strict answers, caching until
`exp`, coalescing, and failures that fail closed."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.introspection_source import IntrospectionSource, introspection_source
from sidecar.core.resource.credentials import ClientCredentials, read_credentials_file
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.http.proxy import open_session
from sidecar.ports import InvalidTokenError, SourceUnavailableError
from sidecar.settings import ConfigError
from tests.conftest import make_settings
from tests.support.fakes import FakeClock
from tests.support.opaque_as import OpaqueTokenServer
from tests.support.servers import start_app

JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
CLIENT_ID, SECRET = "rs:api", "s3 cr+t/=%"  # both need RFC 6749 §2.3.1's form-encoding
CREDENTIALS = ClientCredentials(CLIENT_ID, SECRET)


@pytest.fixture
async def upstream() -> AsyncIterator[OpaqueTokenServer]:
    server = OpaqueTokenServer(introspection_credentials=(CLIENT_ID, SECRET))
    runner, server.url = await start_app(server.app())
    yield server
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def source(upstream: OpaqueTokenServer, clock: FakeClock
                 ) -> AsyncIterator[IntrospectionSource]:
    source = IntrospectionSource(f"{upstream.url}/introspect", CREDENTIALS, clock,
                                 cache_seconds=300, inactive_seconds=10)
    yield source
    await source.close()


async def test_an_active_answer_with_cnf_gives_the_binding(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    exp = int(clock.now()) + 600
    token = upstream.issue(client_id="app", sub="alice", scope="read write", exp=exp,
                           cnf={"jkt": JKT}, token_type="DPoP")
    assert await source.facts(token) == TokenFacts(
        source="introspection", jkt=JKT, client_id="app", subject="alice",
        scope="read write", expires_at=exp)
    assert upstream.last_form() == {"token": token, "token_type_hint": "access_token"}


async def test_an_answer_without_cnf_is_an_unbound_token(
        upstream: OpaqueTokenServer, source: IntrospectionSource) -> None:
    facts = await source.facts(upstream.issue(client_id="app", scope="read"))
    assert facts is not None and not facts.is_bound and facts.client_id == "app"


async def test_the_credentials_are_sent_as_basic(
        upstream: OpaqueTokenServer, source: IntrospectionSource) -> None:
    await source.facts(upstream.issue(client_id="app"))
    scheme, _, encoded = upstream.introspection_authorizations[-1].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "rs%3Aapi:s3+cr%2Bt%2F%3D%25"


async def test_wrong_credentials_are_an_unavailable_source(
        upstream: OpaqueTokenServer, clock: FakeClock) -> None:
    source = IntrospectionSource(f"{upstream.url}/introspect",
                                 ClientCredentials(CLIENT_ID, "wrong"), clock)
    try:
        with pytest.raises(SourceUnavailableError, match="HTTP status 401") as caught:
            await source.facts(upstream.issue(client_id="app"))
        assert "wrong" not in str(caught.value)
    finally:
        await source.close()


async def test_answers_are_cached_until_the_token_expires(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    token = upstream.issue(client_id="app", exp=int(clock.now()) + 30, cnf={"jkt": JKT})
    for _ in range(3):
        assert (await source.facts(token) or TokenFacts("jwt")).jkt == JKT
    assert source.lookups == 1 and len(upstream.introspection_bodies) == 1
    clock.advance(31)
    await source.facts(token)
    assert source.lookups == 2


async def test_answers_are_cached_at_most_cache_seconds(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    token = upstream.issue(client_id="app", exp=int(clock.now()) + 86400)
    await source.facts(token)
    clock.advance(299)
    await source.facts(token)
    assert source.lookups == 1
    clock.advance(2)
    await source.facts(token)
    assert source.lookups == 2


async def test_a_revoked_token_stays_known_at_most_cache_seconds(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    token = upstream.issue(client_id="app")
    assert await source.facts(token) is not None
    upstream.revoked.append(token)
    clock.advance(301)
    await _refused_as_inactive(source, token)


async def _refused_as_inactive(source: IntrospectionSource, token: str) -> None:
    # RFC 7662 §2.2: an inactive token is refused, not passed on as one nobody knows (which
    # resource.bearer = "allow" would let through as an unbound Bearer token).
    with pytest.raises(InvalidTokenError) as refused:
        await source.facts(token)
    assert refused.value.reason == "introspection.inactive"


async def test_inactive_answers_are_refused_and_cached_briefly(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    await _refused_as_inactive(source, "never-issued")
    await _refused_as_inactive(source, "never-issued")
    assert source.lookups == 1
    clock.advance(11)
    await _refused_as_inactive(source, "never-issued")
    assert source.lookups == 2


async def test_an_active_answer_with_a_past_exp_is_inactive(
        upstream: OpaqueTokenServer, source: IntrospectionSource, clock: FakeClock) -> None:
    token = upstream.issue(client_id="app", exp=int(clock.now()) - 3600)
    await _refused_as_inactive(source, token)


async def test_zero_cache_seconds_asks_every_time(
        upstream: OpaqueTokenServer, clock: FakeClock) -> None:
    source = IntrospectionSource(f"{upstream.url}/introspect", CREDENTIALS, clock,
                                 cache_seconds=0)
    try:
        token = upstream.issue(client_id="app")
        await source.facts(token)
        await source.facts(token)
        assert source.lookups == 2
    finally:
        await source.close()


async def test_the_cache_is_bounded(upstream: OpaqueTokenServer, clock: FakeClock) -> None:
    source = IntrospectionSource(f"{upstream.url}/introspect", CREDENTIALS, clock,
                                 max_entries=2)
    try:
        tokens = [upstream.issue(client_id="app") for _ in range(3)]
        for token in tokens:
            await source.facts(token)
        await source.facts(tokens[2])
        assert source.lookups == 3  # the last one is still cached
        await source.facts(tokens[0])
        assert source.lookups == 4  # the first one was evicted
    finally:
        await source.close()


async def test_concurrent_lookups_of_one_token_are_coalesced(
        upstream: OpaqueTokenServer, source: IntrospectionSource) -> None:
    upstream.introspection_delay = 0.2
    token = upstream.issue(client_id="app", cnf={"jkt": JKT})
    results = await asyncio.gather(*(source.facts(token) for _ in range(20)))
    assert all(r is not None and r.jkt == JKT for r in results)
    assert source.lookups == 1 and len(upstream.introspection_bodies) == 1


async def test_a_waiter_that_goes_away_does_not_cancel_the_others(
        upstream: OpaqueTokenServer, source: IntrospectionSource) -> None:
    upstream.introspection_delay = 0.2
    token = upstream.issue(client_id="app")
    first = asyncio.ensure_future(source.facts(token))
    second = asyncio.ensure_future(source.facts(token))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second) is not None
    assert source.lookups == 1


async def test_a_server_error_is_an_unavailable_source_and_not_cached(
        upstream: OpaqueTokenServer, source: IntrospectionSource) -> None:
    token = upstream.issue(client_id="app")
    upstream.introspection_status = 500
    with pytest.raises(SourceUnavailableError, match="HTTP status 500"):
        await source.facts(token)
    upstream.introspection_status = 200
    assert await source.facts(token) is not None
    assert source.lookups == 2


async def test_a_timeout_is_an_unavailable_source(
        upstream: OpaqueTokenServer, clock: FakeClock) -> None:
    upstream.introspection_delay = 2.0
    source = IntrospectionSource(f"{upstream.url}/introspect", CREDENTIALS, clock,
                                 timeout_seconds=0.2)
    try:
        with pytest.raises(SourceUnavailableError, match=r"no answer within 0\.2 s"):
            await source.facts(upstream.issue(client_id="app"))
    finally:
        await source.close()


async def test_a_closed_port_is_an_unavailable_source(clock: FakeClock) -> None:
    with socket.socket() as held:  # bound, not listening: connections are refused
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        source = IntrospectionSource(f"http://127.0.0.1:{port}/introspect", CREDENTIALS,
                                     clock)
        try:
            with pytest.raises(SourceUnavailableError, match="ClientConnectorError"):
                await source.facts("tok")
        finally:
            await source.close()


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b'{"active": "true"}', "application/json", "active is not a JSON boolean"),
    (b'{"active": 1}', "application/json", "active is not a JSON boolean"),
    (b'{"client_id": "app"}', "application/json", "active is not a JSON boolean"),
    (b'{"active": true, "active": false}', "application/json", "not a JSON object"),
    (b'[true]', "application/json", "not a JSON object"),
    (b'{"active": true}', "text/html", "Content-Type"),
    (b'{"active": true, "cnf": "key"}', "application/json", "bad_cnf"),
    (b'{"active": true, "cnf": {"jwk": {}}}', "application/json", "unsupported_cnf"),
    (b'{"active": true, "exp": "soon"}', "application/json", "bad_claim"),
    (b'{"active": true, "token_type": 5}', "application/json", "token_type"),
    (b'{"active": true, "pad": "' + b"x" * 70000 + b'"}', "application/json", "larger"),
], ids=["active string", "active 1", "no active", "duplicate active", "an array",
        "html", "cnf string", "cnf jwk", "exp string", "token_type number", "too large"])
async def test_answers_not_understood_are_an_unavailable_source(
        clock: FakeClock, body: bytes, content_type: str, reason: str) -> None:
    """Never read as "unbound": a binding the sidecar cannot read fails closed."""
    async def introspect(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    app = web.Application()
    app.router.add_post("/introspect", introspect)
    runner, url = await start_app(app)
    source = IntrospectionSource(f"{url}/introspect", CREDENTIALS, clock)
    try:
        with pytest.raises(SourceUnavailableError, match=reason):
            await source.facts("tok")
        with pytest.raises(SourceUnavailableError):  # not cached either
            await source.facts("tok")
        assert source.lookups == 2
    finally:
        await source.close()
        await runner.cleanup()


def test_the_secret_is_never_in_a_repr() -> None:
    assert SECRET not in repr(CREDENTIALS) and CLIENT_ID in repr(CREDENTIALS)


def test_the_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "introspection.toml"
    path.write_text('client_id = "rs:api"\nclient_secret = "s3 cr+t/=%"\n')
    read = read_credentials_file(path, "resource.introspection_credentials_file", LOCAL_FILES)
    assert read == CREDENTIALS


@pytest.mark.parametrize(("text", "problem"), [
    ('client_id = "rs"\n', "client_secret must be a non-empty printable string"),
    ('client_id = "rs"\nclient_secret = ""\n', "client_secret must be"),
    ('client_id = "rs"\nclient_secret = "hunter2hunter2"\nsecret = "x"\n', "unknown key 'secret'"),
    ("rs:hunter2hunter2\n", "is not a TOML file"),
    ('client_id = 1\nclient_secret = "hunter2hunter2"\n', "client_id must be"),
])
def test_a_bad_credentials_file_names_the_key_never_the_secret(
        tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "introspection.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        read_credentials_file(path, "resource.introspection_credentials_file", LOCAL_FILES)
    message = str(caught.value)
    assert problem in message and "resource.introspection_credentials_file" in message
    assert "hunter2" not in message


def test_a_missing_credentials_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_credentials_file(tmp_path / "absent.toml", "resource.introspection_credentials_file",
                              LOCAL_FILES)


async def test_built_from_the_resource_settings(tmp_path: Path,
                                                upstream: OpaqueTokenServer) -> None:
    credentials = tmp_path / "introspection.toml"
    credentials.write_text(f'client_id = "{CLIENT_ID}"\nclient_secret = "{SECRET}"\n')
    resource = {"enabled": True, "public_origin": "https://api.example.com",
                "check_listen": "127.0.0.1:8181"}
    clock = FakeClock()
    off = make_settings(upstream.url, resource=resource)
    on = make_settings(upstream.url, resource={
        **resource, "introspection_url": f"{upstream.url}/introspect",
        "introspection_credentials_file": str(credentials), "introspection_cache_seconds": 7})
    policy = ResourcePolicy.from_settings(on, LOCAL_FILES)
    assert policy.introspection_credentials == CREDENTIALS
    # The application's own session, a proxy's: it adds no Content-Type of its own.
    async with open_session(off.upstream) as session:
        assert introspection_source(off, None, session, clock) is None
        source = introspection_source(on, policy.introspection_credentials, session, clock)
        assert source is not None and source.cache_seconds == 7
        assert (await source.facts(upstream.issue(client_id="app")) or TokenFacts("jwt")
                ).client_id == "app"


def test_a_bad_credentials_file_is_a_configuration_problem(tmp_path: Path) -> None:
    """Found with the rest of the configuration (check-config, start), never mid-request."""
    credentials = tmp_path / "introspection.toml"
    credentials.write_text('client_id = "rs"\n')
    settings = make_settings("http://127.0.0.1:9", resource={
        "enabled": True, "public_origin": "https://api.example.com",
        "check_listen": "127.0.0.1:8181", "introspection_url": "http://127.0.0.1:9/i",
        "introspection_credentials_file": str(credentials)})
    with pytest.raises(ConfigError, match="client_secret must be"):
        ResourcePolicy.from_settings(settings, LOCAL_FILES)
