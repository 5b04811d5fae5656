"""Arbitrary methods, headers and bodies at the token path: a 4xx OAuth error or a forward,
never a 5xx, and the sidecar keeps serving (issue: "Bad input")."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.http.app import build_app
from tests.conftest import make_settings
from tests.support.servers import RecordingUpstream, start_app

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Header values as a client can put them on the wire: visible Latin-1 and spaces, no CR/LF.
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                      exclude_characters="\x7f"), max_size=200)
# JWT-shaped values reach the JOSE parsers instead of stopping at the first split.
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["typ", "alg", "jwk", "kid", "jti", "htm", "htu", "iat", "exp", "sub",
                         "cnf", "aud", "nonce", "kty", "crv", "x", "y", "d"]), inner,
        max_size=5), max_leaves=12)


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


jwt_like = st.builds(lambda h, c, sig: f"{_segment(h)}.{_segment(c)}.{sig}", _json_like,
                     _json_like, st.text("ABCDEFabcdef0123456789-_", max_size=20))
header_values = header_values | jwt_like
header_names = st.sampled_from([
    "Content-Type", "Authorization", "DPoP", "X-SSL-Client-Cert", "X-Token-Client-Id",
    "OAuth-Client-Attestation", "OAuth-Client-Attestation-PoP", "X-Request-Id", "Origin",
    "Connection", "Accept-Encoding", "X-Other",
]) | st.text(TOKEN_CHARS, min_size=1, max_size=20)
content_types = st.sampled_from([
    "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=utf-8",
    "application/x-www-form-urlencoded; charset=\"", "application/json", "", ";;;", "a/b; c",
])
form_bodies = st.lists(st.tuples(
    st.sampled_from(["grant_type", "client_id", "client_secret", "scope", "resource", "code",
                     "client_assertion", "client_assertion_type", "authorization_details",
                     "refresh_token", "code_verifier", "redirect_uri", "%", "=", ""]),
    st.text(max_size=40)), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass"))
bodies = st.binary(max_size=400) | form_bodies


@dataclass
class Running:
    host: str
    port: int
    token_path: str


def everything_on(directory: Path) -> dict[str, dict[str, Any]]:
    """Every check of the product switched on: registry, DPoP with nonces, attestation."""
    secret = "a-secret-for-nonces-and-challenges-0123456789"
    (directory / "secret").write_text(secret + "\n")
    (directory / "billing.secret").write_text("s3cret\n")
    (directory / "clients.toml").write_text(
        '[[clients]]\nclient_id = "billing"\ntoken_endpoint_auth_method = "client_secret_basic"\n'
        'client_secret_file = "billing.secret"\ngrant_types = ["client_credentials"]\n'
        '[[clients]]\nclient_id = "spa"\ntoken_endpoint_auth_method = "none"\n'
        'grant_types = ["authorization_code", "refresh_token"]\n')
    attester = {"kty": "EC", "crv": "P-256", "kid": "a",
                "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    return {
        "clients": {"registry_file": str(directory / "clients.toml")},
        "dpop": {"nonce_secret_file": str(directory / "secret"), "par_path": "/par"},
        "attestation": {"enabled": True, "challenge_secret_file": str(directory / "secret"),
                        "accept_legacy_client_assertion": True,
                        "attesters": [{"issuer": "https://attester.example",
                                       "jwks": json.dumps({"keys": [attester]}),
                                       "clients": ["spa"]}]},
    }


@pytest.fixture(scope="module", params=["defaults", "everything_on"])
def running_sidecar(request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    sections = {} if request.param == "defaults" \
        else everything_on(tmp_path_factory.mktemp("everything"))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def main() -> None:
        upstream = RecordingUpstream()
        up_runner, up_url = await start_app(upstream.app())
        sidecar_settings = make_settings(up_url, server={"max_body_bytes": 2048},
                                         **sections)
        runner, url = await start_app(build_app(sidecar_settings))
        box["url"] = url
        started.set()
        stop = asyncio.Event()
        box["stop"] = stop
        await stop.wait()
        await runner.cleanup()
        await up_runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    host, port = str(box["url"]).removeprefix("http://").split(":")
    yield Running(host, int(port), "/token")
    stop = box["stop"]
    assert isinstance(stop, asyncio.Event)
    loop.call_soon_threadsafe(stop.set)
    thread.join(10)
    loop.close()


def send(target: Running, method: str, headers: list[tuple[str, str]],
         body: bytes) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection(target.host, target.port, timeout=10)
    try:
        connection.putrequest(method, target.token_path, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value.encode("latin-1"))
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD",
                            "OPTIONS"]),
    content_type=content_types,
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    body=bodies,
)
def test_bad_input_never_gets_a_5xx(running_sidecar: Running, method: str, content_type: str,
                                    headers: list[tuple[str, str]], body: bytes) -> None:
    headers = [h for h in headers if h[0].lower() not in ("content-length", "transfer-encoding",
                                                          "host", "expect")]
    status, response_type, payload = send(
        running_sidecar, method, [("Content-Type", content_type), *headers], body)
    assert status < 500, payload
    if status >= 400 and method != "HEAD":
        assert response_type == "application/json"
        error = json.loads(payload)
        assert isinstance(error["error"], str)
        assert isinstance(error["error_description"], str)


def test_still_serving_after_the_storm(running_sidecar: Running) -> None:
    status, _, _ = send(running_sidecar, "POST",
                        [("Content-Type", "application/x-www-form-urlencoded"),
                         ("Authorization", "Basic YmlsbGluZzpzM2NyZXQ=")],  # billing:s3cret
                        b"grant_type=client_credentials")
    assert status == 200
