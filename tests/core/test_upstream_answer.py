"""What the sidecar does with the upstream's answer to a forwarded token request
(sidecar.core.upstream_answer `AnswerReview`): the access token bound to the DPoP key or
certificate the request proved, the refresh token of a public client bound too, `token_type`
told as DPoP only when the binding was recorded (RFC 9449 §5), and a store failure in closed
mode answered as 503 rather than handing out a token whose binding was lost.

One row: the settings, the request `decide` forwarded, the upstream's status and body, whether
the store fails between the decision and the answer -> what the client is told and what the
store holds."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from sidecar.core.access_binding import ACCESS_BINDING, decode_binding
from sidecar.core.binding import REFRESH_BINDING
from sidecar.core.decide import decide
from sidecar.core.steps import StepContext
from sidecar.core.upstream_answer import AnswerEdit, AnswerReview
from sidecar.model import Forward
from tests.support.pipeline import (
    AUTH_CODE,
    CC,
    CERT,
    CERT_HEADER,
    CLIENT,
    JKT,
    NONCES,
    OTHER,
    REFRESH,
    SECRET,
    SPA,
    STORE_DOWN,
    STORE_DOWN_OPEN,
    Pipeline,
    Req,
    basic,
)

ACCESS = "at-1"
ISSUED = "rt-new"
BEARER: dict[str, Any] = {"access_token": ACCESS, "token_type": "Bearer", "expires_in": 300}
WITH_REFRESH: dict[str, Any] = {**BEARER, "refresh_token": ISSUED}
REWRITE, PASS, REQUIRE = ({"dpop": {"upstream_token_type": mode}}
                          for mode in ("rewrite", "pass", "require"))


@dataclass(frozen=True)
class Told:
    """What the client is told, and what the store holds afterwards."""

    token_type: str | None = None  # None: the upstream's body goes out unchanged
    error: tuple[str, str, int] | None = None  # code, result code, status
    notes: tuple[str, ...] = ()
    access_cnf: Mapping[str, str] = field(default_factory=dict)  # {} when none was recorded
    refresh_bound_to: str | None = None


@dataclass(frozen=True)
class AnswerCase:
    name: str
    request: Callable[[Pipeline, StepContext], Req]
    expect: Told
    answer: Mapping[str, Any] = field(default_factory=lambda: BEARER)
    status: int = 200
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    store_fails: bool = False  # the store goes down between the decision and the answer


def dpop(p: Pipeline, env: StepContext, body: str = SPA) -> Req:
    return Req(body, dpop=(p.proof(),))


CASES: tuple[AnswerCase, ...] = (
    AnswerCase("rewrite: a Bearer answer to a DPoP request is told as DPoP once bound",
               dpop, Told("DPoP", notes=("access_binding.recorded", "upstream_token_type.rewrite"),
                          access_cnf={"jkt": CLIENT.jkt}),
               settings=REWRITE),
    AnswerCase("an upstream that issued DPoP is left as it is",
               dpop, Told(notes=("access_binding.recorded",), access_cnf={"jkt": CLIENT.jkt}),
               answer={**BEARER, "token_type": "DPoP"}),
    AnswerCase("pass: the upstream's token_type is passed, the binding still recorded",
               dpop, Told(notes=("access_binding.recorded", "upstream_token_type.pass"),
                          access_cnf={"jkt": CLIENT.jkt}), settings=PASS),
    AnswerCase("require: a Bearer answer to a DPoP request is a 502",
               dpop, Told(error=("server_error", "upstream.token_type_not_dpop", 502),
                          notes=("access_binding.recorded", "upstream_token_type.require"),
                          access_cnf={"jkt": CLIENT.jkt}), settings=REQUIRE),
    AnswerCase("open: a store that is down records nothing, and DPoP is not claimed",
               dpop, Told(notes=("access_binding.skipped", "upstream_token_type.unbound")),
               settings=STORE_DOWN_OPEN),
    AnswerCase("closed: a binding that cannot be recorded is a 503, not an unbound token",
               dpop, Told(error=("temporarily_unavailable", "store.unavailable", 503)),
               store_fails=True),
    AnswerCase("closed: the same for a certificate-bound token",
               lambda p, env: Req(f"{CC}&client_id=app", cert=CERT_HEADER),
               Told(error=("temporarily_unavailable", "store.unavailable", 503)),
               settings=STORE_DOWN),
    AnswerCase("a certificate-bound token is recorded and stays a Bearer token (RFC 8705 §3)",
               lambda p, env: Req(f"{CC}&client_id=app", cert=CERT_HEADER),
               Told(notes=("access_binding.recorded",), access_cnf={"x5t#S256": CERT.x5t_s256})),
    AnswerCase("a public client's refresh token is bound to its DPoP key",
               lambda p, env: dpop(p, env, f"{AUTH_CODE}&client_id=public"),
               Told("DPoP", notes=("access_binding.recorded", "refresh_binding.recorded",
                                   "upstream_token_type.rewrite"),
                    access_cnf={"jkt": CLIENT.jkt}, refresh_bound_to=JKT),
               answer=WITH_REFRESH),
    AnswerCase("a confidential client's refresh token is not bound",
               lambda p, env: Req(CC, authorization=basic("app", SECRET), dpop=(p.proof(),)),
               Told("DPoP", notes=("access_binding.recorded", "upstream_token_type.rewrite"),
                    access_cnf={"jkt": CLIENT.jkt}), answer=WITH_REFRESH),
    AnswerCase("nothing proven: nothing to bind, nothing rewritten",
               lambda p, env: Req(CC, authorization=basic("app", SECRET)), Told(),
               answer=WITH_REFRESH, store_fails=True),
    AnswerCase("an error answer is passed as it is",
               dpop, Told(), answer={"error": "invalid_grant"}, status=400, store_fails=True),
    AnswerCase("an answer that is not a JSON object is passed as it is",
               dpop, Told(), answer={"not": "a token"}, store_fails=True),
)


async def reviewed(pipeline: Pipeline, case: AnswerCase) -> tuple[AnswerEdit, StepContext]:
    env = pipeline.env(case.settings)
    forward = await decide(case.request(pipeline, env).token_request(), env)
    assert isinstance(forward, Forward), forward
    if case.store_fails:
        env = dataclasses.replace(env, store=pipeline.env(STORE_DOWN).store)
    body = json.dumps(case.answer).encode()
    return await AnswerReview.of(env)(forward, case.status, body), env


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_review_answer(pipeline: Pipeline, case: AnswerCase) -> None:
    edit, env = await reviewed(pipeline, case)
    told = case.expect
    assert edit.notes == told.notes
    if told.error is None:
        assert edit.error is None, edit.error
    else:
        assert edit.error is not None
        assert (edit.error.code, edit.error.result_code, edit.error.status) == told.error
    if told.token_type is None:
        assert edit.body is None  # the upstream's bytes go out unchanged
    else:
        assert edit.body is not None
        rewritten = json.loads(edit.body)
        assert rewritten == {**case.answer, "token_type": told.token_type}
    if case.store_fails or "store" in case.settings:
        return  # nothing to read back from a store that is down
    access = decode_binding(await env.store.get_binding(ACCESS_BINDING, ACCESS))
    assert (access.cnf() if access else {}) == told.access_cnf
    assert await env.store.get_binding(REFRESH_BINDING, ISSUED) == told.refresh_bound_to


async def test_a_fresh_nonce_goes_with_every_answer(pipeline: Pipeline) -> None:
    # RFC 9449 §8.2: the server may hand out a new nonce with any response.
    case = AnswerCase("nonce", lambda p, env: Req(CC, authorization=basic("app", SECRET)),
                      Told(), settings=NONCES)
    edit, _ = await reviewed(pipeline, case)
    nonces = [value for name, value in edit.headers if name == "DPoP-Nonce"]
    assert len(nonces) == 1 and nonces[0]


async def test_a_bound_refresh_token_is_spent_only_with_its_key(pipeline: Pipeline) -> None:
    # The whole chain: issued to a public client with a proof, bound by the answer step, then
    # refreshed without a proof, with another key, and with the right one.
    env = pipeline.env()
    first = await decide(dpop(pipeline, env, f"{AUTH_CODE}&client_id=public").token_request(),
                         env)
    assert isinstance(first, Forward)
    edit = await AnswerReview.of(env)(first, 200, json.dumps(WITH_REFRESH).encode())
    assert "refresh_binding.recorded" in edit.notes
    refresh = REFRESH.replace("rt-1", ISSUED)
    for req, result_code in ((Req(refresh), "binding.dpop_proof_required"),
                             (Req(refresh, dpop=(pipeline.proof(OTHER),)),
                              "binding.dpop_key_mismatch")):
        refused = await decide(req.token_request(), env)
        assert not isinstance(refused, Forward)
        assert (refused.error.code, refused.error.result_code) == ("invalid_grant", result_code)
    allowed = await decide(dpop(pipeline, env, refresh).token_request(), env)
    assert isinstance(allowed, Forward), allowed
    # The rotated refresh token the upstream issues now inherits the binding.
    assert allowed.bind_refresh_token_to == JKT
