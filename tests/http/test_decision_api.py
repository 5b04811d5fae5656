"""The decision API through real HTTP (README "Calling instead of proxying"): the key, strict
bodies, and one table of token requests sent to both doors of one sidecar, the proxy and the
API, deciding alike."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import aiohttp
import pytest
from aiohttp import web

from sidecar.http.app import build_admin_app, build_app
from sidecar.http.decision_api import ApiKeys, build_api_app, openapi_text
from tests.conftest import TOKEN_URL_PUBLIC, make_settings
from tests.support.dpop import DpopKey
from tests.support.servers import RecordingUpstream, start_app

API_KEY = "an-api-key-that-is-long-enough-0123456789"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SECRET = "a client secret with + and %"
REGISTRY = """
[[clients]]
client_id = "basic"
token_endpoint_auth_method = "client_secret_basic"
client_secret_file = "basic.secret"
grant_types = ["client_credentials", "password",
               "urn:ietf:params:oauth:grant-type:token-exchange"]
access_token_duration = 300
"""


@dataclass
class Doors:
    proxy: str
    api: str
    upstream: RecordingUpstream
    admin: str = ""


@pytest.fixture
async def doors(tmp_path: Path, upstream: RecordingUpstream) -> AsyncIterator[Doors]:
    (tmp_path / "clients.toml").write_text(REGISTRY)
    (tmp_path / "basic.secret").write_text(SECRET + "\n")
    settings = make_settings(upstream.url, clients={
        "registry_file": str(tmp_path / "clients.toml")})
    token_app = build_app(settings)
    token_runner, proxy = await start_app(token_app)
    api_runner, api = await start_app(build_api_app(token_app, ApiKeys((API_KEY,)), 262144))
    admin_runner, admin = await start_app(build_admin_app(token_app))
    yield Doors(proxy, api, upstream, admin)
    await admin_runner.cleanup()
    await api_runner.cleanup()
    await token_runner.cleanup()


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


async def call(client: aiohttp.ClientSession, doors: Doors, members: Any, *,
               key: str | None = API_KEY, path: str = "/api/auth/token",
               ) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = members if isinstance(members, bytes) else json.dumps(members).encode()
    async with client.post(doors.api + path, data=io.BytesIO(body),
                           headers={**headers, "Content-Type": "application/json"}) as response:
        answer: dict[str, Any] = await response.json(content_type=None)
        return response.status, answer


# ---------------------------------------------------------------------------------------
# Access and bad input: 400/401 with a clear message, never 500.


@pytest.mark.parametrize("key", [None, "wrong-key", API_KEY + "x", API_KEY[:-1]])
async def test_a_call_without_a_valid_key_is_401(client: aiohttp.ClientSession, doors: Doors,
                                                 key: str | None) -> None:
    status, answer = await call(client, doors, {"parameters": "grant_type=x"}, key=key)
    assert status == 401
    assert answer["resultCode"] == "api.unauthorized"
    assert doors.upstream.received == []


@pytest.mark.parametrize(("body", "result_code", "message"), [
    (b"not json", "api.bad_json", "The body is not valid JSON."),
    (b'{"parameters": "a", "parameters": "b"}', "api.bad_json",
     "The member 'parameters' appears more than once."),
    (b"[1]", "api.bad_json", "The body must be a JSON object."),
    (b'{"parameters": 5}', "api.bad_field", "parameters must be a string."),
    (b'{"clientId": "c"}', "api.bad_field",
     "parameters is required: the token request's form body."),
    (b'{"parameters": "grant_type=client_credentials", "dpopNonceRequired": "yes"}',
     "api.bad_field", "dpopNonceRequired must be true or false."),
    (b'{"parameters": "p", "clientSecert": "s"}', "api.bad_field",
     "Unknown member 'clientSecert'."),
    (json.dumps({"parameters": "p", "dpop": "x" * 20000}).encode(), "api.bad_field",
     "dpop is longer than 16384 characters."),
])
async def test_bad_bodies_are_400_naming_the_field(client: aiohttp.ClientSession, doors: Doors,
                                                   body: bytes, result_code: str,
                                                   message: str) -> None:
    status, answer = await call(client, doors, body)
    assert (status, answer["resultCode"], answer["resultMessage"]) == (400, result_code, message)


async def test_a_one_mebibyte_body_is_413(client: aiohttp.ClientSession, doors: Doors) -> None:
    status, answer = await call(client, doors, {"parameters": "a" * 1024 * 1024})
    assert (status, answer["resultCode"]) == (413, "api.body_too_large")


async def test_another_media_type_is_415(client: aiohttp.ClientSession, doors: Doors) -> None:
    async with client.post(doors.api + "/api/auth/token", data="parameters=x",
                           headers={"Authorization": f"Bearer {API_KEY}", **FORM}) as response:
        assert response.status == 415
        assert (await response.json())["resultCode"] == "api.unsupported_media_type"


async def test_no_field_value_reaches_the_log(client: aiohttp.ClientSession, doors: Doors,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    await call(client, doors, {"parameters": "grant_type=password&username=u&password=pw-77",
                               "clientId": "basic", "clientSecret": SECRET})
    logged = caplog.text + "".join(str(getattr(r, "fields", "")) for r in caplog.records)
    assert "pw-77" not in logged and SECRET not in logged


# ---------------------------------------------------------------------------------------
# One table, two doors.


@dataclass(frozen=True)
class Row:
    name: str
    body: str
    authorization: str | None = None
    dpop: Callable[[], str] | None = None


KEY = DpopKey()
EXCHANGE = ("grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=st"
            "&subject_token_type=urn:ietf:params:oauth:token-type:access_token"
            "&audience=a1&audience=a2&resource=https://rs.example/")
ROWS = (
    Row("client credentials, Basic", "grant_type=client_credentials&scope=read write",
        basic("basic", SECRET)),
    Row("wrong secret", "grant_type=client_credentials", basic("basic", SECRET + "x")),
    Row("unknown client", "grant_type=client_credentials", basic("stranger", SECRET)),
    Row("no client", "grant_type=client_credentials"),
    Row("a parameter twice", "grant_type=client_credentials&scope=a&scope=b",
        basic("basic", SECRET)),
    Row("unknown grant", "grant_type=urn:example:magic", basic("basic", SECRET)),
    Row("password", "grant_type=password&username=alice&password=pw", basic("basic", SECRET)),
    Row("token exchange", EXCHANGE, basic("basic", SECRET)),
    Row("DPoP proof", "grant_type=client_credentials", basic("basic", SECRET),
        lambda: KEY.proof(TOKEN_URL_PUBLIC)),
    Row("DPoP proof for another endpoint", "grant_type=client_credentials",
        basic("basic", SECRET), lambda: KEY.proof("https://elsewhere.example/token")),
    Row("not a DPoP proof", "grant_type=client_credentials", basic("basic", SECRET),
        lambda: "not-a-jwt"),
)

# Context header (without X-Token-) -> decision-API field.
CONTEXT_FIELDS = {"Grant-Type": "grantType", "Client-Id": "clientId",
                  "Client-Auth-Method": "clientAuthMethod", "DPoP-JKT": "dpopJkt",
                  "Access-Token-Duration": "accessTokenDuration"}


DOCUMENTED = set(json.loads(openapi_text())["components"]["schemas"]["TokenAnswer"]["properties"])


def as_call(row: Row, proof: str | None) -> dict[str, Any]:
    members: dict[str, Any] = {"parameters": row.body}
    if row.authorization:
        pair = base64.b64decode(row.authorization.removeprefix("Basic ")).decode()
        client_id, _, secret = pair.partition(":")
        members |= {"clientId": unquote_plus(client_id), "clientSecret": unquote_plus(secret)}
    if proof is not None:
        members["dpop"] = proof
    return members


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_both_doors_decide_alike(client: aiohttp.ClientSession, doors: Doors,
                                       row: Row) -> None:
    headers = {**FORM, **({"Authorization": row.authorization} if row.authorization else {})}
    if row.dpop:
        headers["DPoP"] = row.dpop()
    before = len(doors.upstream.received)
    async with client.post(doors.proxy + "/token", data=row.body, headers=headers) as response:
        proxy_status, proxy_body = response.status, await response.text()
    forwarded = len(doors.upstream.received) > before
    status, answer = await call(client, doors, as_call(row, row.dpop() if row.dpop else None))
    assert status == 200
    assert set(answer) <= DOCUMENTED, set(answer) - DOCUMENTED  # the OpenAPI document
    assert len(doors.upstream.received) == before + forwarded  # the API forwards nothing
    if not forwarded:
        assert answer["action"] in ("BAD_REQUEST", "INVALID_CLIENT")
        assert answer["httpStatus"] == proxy_status
        assert json.loads(answer["responseContent"]) == json.loads(proxy_body)
        return
    context = {name.removeprefix("X-Token-"): value
               for name, value in doors.upstream.last.context.items()}
    assert answer["action"] == context["Action"]
    for name, field in CONTEXT_FIELDS.items():
        expected = context.get(name)
        got = answer.get(field)
        assert (str(got) if got is not None else None) == expected, (name, answer)


async def test_the_fields_each_action_needs(client: aiohttp.ClientSession, doors: Doors) -> None:
    auth = as_call(Row("", "", basic("basic", SECRET)), None)
    _, password = await call(client, doors, {
        **auth, "parameters": "grant_type=password&username=alice&password=pw&scope=a b"})
    assert (password["action"], password["username"], password["password"],
            password["scopes"]) == ("PASSWORD", "alice", "pw", ["a", "b"])
    _, exchange = await call(client, doors, {**auth, "parameters": EXCHANGE})
    assert exchange["action"] == "TOKEN_EXCHANGE"
    assert (exchange["subjectToken"], exchange["audiences"], exchange["resources"]) == (
        "st", ["a1", "a2"], ["https://rs.example/"])
    _, proven = await call(client, doors, {**auth, "parameters": "grant_type=client_credentials",
                                           "dpop": KEY.proof(TOKEN_URL_PUBLIC)})
    assert (proven["action"], proven["dpopJkt"], proven["clientAuthenticated"]) == (
        "OK", KEY.jkt, True)
    assert proven["accessTokenDuration"] == 300  # the registered client's policy
    for answer in (password, exchange, proven):
        assert set(answer) <= DOCUMENTED, set(answer) - DOCUMENTED


async def test_a_proof_is_accepted_once_whichever_door_it_comes_through(
        client: aiohttp.ClientSession, doors: Doors) -> None:
    proof = KEY.proof(TOKEN_URL_PUBLIC)
    members = {**as_call(Row("", "", basic("basic", SECRET)), proof),
               "parameters": "grant_type=client_credentials"}
    _, first = await call(client, doors, members)
    assert first["action"] == "OK"
    async with client.post(doors.proxy + "/token", data="grant_type=client_credentials",
                           headers={**FORM, "Authorization": basic("basic", SECRET),
                                    "DPoP": proof}) as response:
        assert response.status == 400
        assert (await response.json())["error"] == "invalid_dpop_proof"
    _, again = await call(client, doors, members)
    assert (again["action"], again["resultCode"]) == ("BAD_REQUEST", "dpop.jti_replayed")


async def test_the_openapi_document_is_served_without_a_key(client: aiohttp.ClientSession,
                                                            doors: Doors) -> None:
    async with client.get(doors.api + "/api/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert "/api/auth/token" in document["paths"]


def test_the_api_never_starts_without_a_key() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        ApiKeys(())
    assert isinstance(build_api_app(web.Application(), ApiKeys((API_KEY,)), 1), web.Application)


async def test_calls_are_counted_by_action_and_result_code(client: aiohttp.ClientSession,
                                                           doors: Doors) -> None:
    auth = as_call(Row("", "", basic("basic", SECRET)), None)
    await call(client, doors, {**auth, "parameters": "grant_type=client_credentials"})
    await call(client, doors, {**auth, "parameters": "grant_type=client_credentials"})
    await call(client, doors, b"{")
    async with client.get(doors.admin + "/metrics") as response:
        text = await response.text()
    assert 'token_sidecar_api_token_calls_total{action="OK",result_code="token.ok"} 2.0' in text
    assert 'token_sidecar_api_token_calls_total{action="",result_code="api.bad_json"} 1.0' in text
