"""Every door to the token endpoint is checked (issue 13, sections 1 and 2), through real HTTP
on raw sockets: the spellings a lenient upstream routes to its token handler, absolute-form
and asterisk-form targets, and OAuth parameters in the query string."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from sidecar.adapters.memory import MemoryStore
from sidecar.ports import SystemClock
from tests.conftest import TOKEN_URL_PUBLIC, Sidecar, SidecarFactory
from tests.http.test_bad_input import everything_on
from tests.support.dpop import DpopKey
from tests.support.raw_http import RawAnswer, send_raw
from tests.support.servers import RecordingUpstream

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = b"grant_type=client_credentials&client_id=app"
PASSWORD = b"grant_type=password&username=alice&password=secret&client_id=app"

# The spellings an adversarial review routed to a lenient upstream's token handler, and
# what the sidecar makes of each: the token path itself ("token"), or unreadable ("refused").
SPELLINGS = [
    ("/token/", "token"), ("/TOKEN", "token"), ("/token.", "token"), ("/token%20", "token"),
    ("/token.json", "token"),  # not in the review's list: Spring's suffix pattern match
    ("//token", "refused"), ("/token;x", "refused"), ("/./token", "refused"),
    ("/a/../token", "refused"), ("/token%2F", "refused"), ("/%2e/token", "refused"),
    ("/token//", "refused"), ("/..;/token", "refused"), ("/token\\", "refused"),
    ("/token%00", "refused"),
]


async def post(sidecar: Sidecar, target: str, body: bytes,
               headers: dict[str, str] | None = None) -> RawAnswer:
    return await send_raw(sidecar.url, target, body=body, headers={**FORM, **(headers or {})})


def nothing_unchecked(sidecar: Sidecar) -> bool:
    """Whatever reached the upstream carried the sidecar's verdict."""
    return all("X-Token-Action" in r.headers for r in sidecar.upstream.received)


async def bind_refresh_token(sidecar: Sidecar, key: DpopKey, token: str) -> None:
    """A public client's refresh token, bound to `key` (RFC 9449 §5)."""
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "DPoP",
                                   "refresh_token": token}
    answer = await post(sidecar, "/token", b"grant_type=authorization_code&code=c&client_id=spa",
                        {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert answer.status == 200
    sidecar.upstream.received.clear()


@pytest.mark.parametrize(("spelling", "reading"), SPELLINGS)
async def test_no_spelling_of_the_token_path_reaches_the_upstream_unchecked(
        sidecar_factory: SidecarFactory, spelling: str, reading: str) -> None:
    strict = await sidecar_factory(grants={"password": "reject"})
    dpop_required = await sidecar_factory(dpop={"required": True})
    await bind_refresh_token(strict, DpopKey(), "rt-bound")
    refused = {"error": "invalid_request"}
    attempts = [
        (strict, PASSWORD, "unsupported_grant_type"),  # a refused grant
        (strict, b"grant_type=refresh_token&refresh_token=rt-bound&client_id=spa",
         "invalid_grant"),  # a bound refresh token without its proof
        (dpop_required, CC, "invalid_dpop_proof"),  # DPoP required, no proof
    ]
    for sidecar, body, validated_error in attempts:
        answer = await post(sidecar, spelling, body)
        expected = validated_error if reading == "token" else refused["error"]
        assert (answer.status, answer.error) == (400, expected), spelling
        assert sidecar.upstream.received == []


@pytest.mark.parametrize("spelling", [s for s, reading in SPELLINGS if reading == "token"])
async def test_a_lenient_spelling_is_validated_and_forwarded_as_sent(
        sidecar: Sidecar, spelling: str) -> None:
    key = DpopKey()
    answer = await post(sidecar, spelling, CC, {"DPoP": key.proof(TOKEN_URL_PUBLIC)})
    assert answer.status == 200
    received = sidecar.upstream.last
    assert received.target == spelling
    assert received.context["X-Token-Action"] == "OK"
    assert received.context["X-Token-DPoP-JKT"] == key.jkt


@pytest.mark.parametrize("spelling", [s for s, _ in SPELLINGS])
async def test_exact_matching_refuses_every_other_spelling(
        sidecar_factory: SidecarFactory, spelling: str) -> None:
    sidecar = await sidecar_factory(server={"token_path_match": "exact"})
    answer = await post(sidecar, spelling, CC)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert sidecar.upstream.received == []
    assert (await post(sidecar, "/token", CC)).status == 200


async def test_spellings_of_the_par_and_challenge_paths_are_those_paths(
        sidecar_factory: SidecarFactory, tmp_path: Path) -> None:
    sidecar = await sidecar_factory(**everything_on(tmp_path))  # PAR at /par, challenges on
    par = b"client_id=spa&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
    # A PAR proof made for the token endpoint is refused at /PAR/ as it is at /par.
    answer = await post(sidecar, "/PAR/", par, {"DPoP": DpopKey().proof(TOKEN_URL_PUBLIC)})
    assert (answer.status, answer.error) == (400, "invalid_dpop_proof")
    for spelling in ("/Attestation-Challenge", "/attestation-challenge/"):
        answer = await send_raw(sidecar.url, spelling, method="POST")
        assert answer.status == 200
        assert "attestation_challenge" in answer.json()
    for spelling in ("/par;x", "/./attestation-challenge"):
        answer = await post(sidecar, spelling, par)
        assert (answer.status, answer.error) == (400, "invalid_request")
    assert sidecar.upstream.received == []


@pytest.mark.parametrize(("method", "target"), [
    ("GET", "/a/../admin"), ("GET", "/static/%2e%2e/secret"), ("PUT", "/upload;x"),
    ("GET", "//evil.example/x"), ("GET", "/x%5C..%5Cy"), ("GET", "/x?a=b#c"),
])
async def test_unreadable_targets_are_refused_on_passed_through_paths_too(
        sidecar: Sidecar, method: str, target: str) -> None:
    answer = await send_raw(sidecar.url, target, method=method)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert answer.headers["Cache-Control"] == "no-store"
    assert sidecar.upstream.received == []


async def test_passed_through_targets_go_as_sent(sidecar: Sidecar) -> None:
    for target in ("/api/caf%C3%A9?q=%zz&filter[a]=1", "/.well-known/openid-configuration"):
        answer = await send_raw(sidecar.url, target, method="GET")
        assert answer.status == 200
        assert sidecar.upstream.last.target == target


# --- absolute-form and asterisk-form (RFC 9112 §3.2.2-3.2.4) ---------------------------------

@pytest.mark.parametrize("target", [
    "http://as.example.com/token", "https://as.example.com/token", "HTTP://as.example.com/token",
    "http://as.example.com:80/token?x=1",
])
async def test_absolute_form_is_refused_before_the_proof_is_spent(
        sidecar: Sidecar, target: str) -> None:
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    answer = await post(sidecar, target, CC, {"DPoP": proof})
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert sidecar.upstream.received == []
    # The jti was not burned: the same proof works on the proper target.
    assert (await post(sidecar, "/token", CC, {"DPoP": proof})).status == 200


async def test_absolute_form_cannot_steer_a_port_less_upstream_url(
        sidecar_factory: SidecarFactory) -> None:
    """`upstream.url` without a port: today's concatenation made the client's target part of
    the upstream's host name."""
    shared = MemoryStore(1000, "t:", SystemClock())
    port_less = await sidecar_factory("http://127.0.0.1", replay_store=shared)
    proper = await sidecar_factory(replay_store=shared)
    upstream_host = proper.upstream.url.removeprefix("http://")
    proof = DpopKey().proof(TOKEN_URL_PUBLIC)
    for target in (f"http://{upstream_host}/token", f"http://x@{upstream_host}/token"):
        answer = await post(port_less, target, CC, {"DPoP": proof})
        assert (answer.status, answer.error) == (400, "invalid_request")
    assert proper.upstream.received == []
    assert (await post(proper, "/token", CC, {"DPoP": proof})).status == 200


async def test_the_path_of_upstream_url_is_a_prefix(sidecar_factory: SidecarFactory,
                                                    upstream: RecordingUpstream) -> None:
    sidecar = await sidecar_factory(upstream.url + "/base/")
    assert (await post(sidecar, "/token?", CC)).status == 200
    assert upstream.last.target == "/base/token"
    assert upstream.last.context["X-Token-Action"] == "OK"
    assert (await send_raw(sidecar.url, "/x%20y?q=%41", method="GET")).status == 200
    assert upstream.last.target == "/base/x%20y?q=%41"


@pytest.mark.parametrize(("method", "target"), [
    ("OPTIONS", "*"), ("CONNECT", "as.example.com:443"), ("CONNECT", "*"),
])
async def test_asterisk_and_authority_form_are_invalid_request(
        sidecar: Sidecar, method: str, target: str) -> None:
    answer = await send_raw(sidecar.url, target, method=method)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert sidecar.upstream.received == []


async def test_a_refused_target_is_logged_without_its_query(
        sidecar: Sidecar, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="token_sidecar.access"):
        answer = await post(sidecar, "/token%2F?password=hunter2", PASSWORD)
    assert answer.status == 400
    assert "request.path_encoded_delimiter" in caplog.text
    assert "hunter2" not in caplog.text


# --- OAuth parameters in the query (section 2) ---------------------------------------------

@pytest.mark.parametrize("query", [
    "grant_type=password&username=alice&password=secret", "GRANT_TYPE=password",
    "grant.type=password", "scope=admin", "client_id=other", "resource=https%3A%2F%2Fx",
    "dpop_jkt=abc", "tenant=a;grant_type=password", "unknown=1",
])
async def test_token_parameters_in_the_query_are_invalid_request(
        sidecar_factory: SidecarFactory, query: str) -> None:
    sidecar = await sidecar_factory(server={"token_query_allowed": ["tenant"]})
    for path in ("/token", "/TOKEN"):
        answer = await post(sidecar, f"{path}?{query}", CC)
        assert (answer.status, answer.error) == (400, "invalid_request"), path
    assert sidecar.upstream.received == []


async def test_a_bound_refresh_token_in_the_query_is_refused(sidecar: Sidecar) -> None:
    """The binding is checked for the body's refresh token; the query's is never forwarded."""
    await bind_refresh_token(sidecar, DpopKey(), "rt-bound")
    sidecar.upstream.token_body = {"access_token": "at", "token_type": "Bearer",
                                   "refresh_token": "rt-2"}
    unbound = b"grant_type=refresh_token&refresh_token=rt-unbound&client_id=spa"
    answer = await post(sidecar, "/token?refresh_token=rt-bound", unbound)
    assert (answer.status, answer.error) == (400, "invalid_request")
    assert sidecar.upstream.received == []
    assert (await post(sidecar, "/token", unbound)).status == 200


async def test_listed_query_parameters_of_the_endpoint_url_are_kept(
        sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(server={"token_query_allowed": ["tenant", "realm"]})
    answer = await post(sidecar, "/token?tenant=a%20b&realm=r", CC)
    assert answer.status == 200
    assert sidecar.upstream.last.target == "/token?tenant=a%20b&realm=r"
    assert sidecar.upstream.last.context["X-Token-Action"] == "OK"
    for query in ("tenant=a&other=b", "Tenant=a", "tenant=%zz"):
        answer = await post(sidecar, f"/token?{query}", CC)
        assert (answer.status, answer.error) == (400, "invalid_request"), query
    assert len(sidecar.upstream.received) == 1


async def test_query_parameters_of_the_par_endpoint_are_checked(
        sidecar_factory: SidecarFactory) -> None:
    sidecar = await sidecar_factory(dpop={"par_path": "/par"})
    par = b"client_id=spa&response_type=code&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
    for query in ("request_uri=urn%3Ax", "redirect_uri=https%3A%2F%2Fevil.example",
                  "code_challenge=x", "anything=1"):
        answer = await post(sidecar, f"/par?{query}", par)
        assert (answer.status, answer.error) == (400, "invalid_request"), query
    assert sidecar.upstream.received == []
    assert (await post(sidecar, "/par", par)).status == 200


async def test_other_paths_keep_their_query(sidecar: Sidecar) -> None:
    answer = await send_raw(sidecar.url, "/userinfo?grant_type=x&scope=y", method="GET")
    assert answer.status == 200
    assert sidecar.upstream.last.query == "grant_type=x&scope=y"
