"""Pushed authorization requests with DPoP (sidecar.core.par; RFC 9126, RFC 9449 §10.1): the
proof is checked with the PAR endpoint's URL as `htu`, a `dpop_jkt` must name the proof's
key, and the proof's `jti` is burned last, as at the token endpoint."""

from __future__ import annotations

import pytest

from sidecar.core.decide import decide
from sidecar.core.par import ParDecider
from sidecar.model import Action, Forward
from tests.support.pipeline import (
    CC,
    CLIENT,
    INVALID_DPOP,
    NONCES,
    OTHER,
    STORE_DOWN,
    STORE_DOWN_OPEN,
    TOKEN_URL,
    Case,
    Forwarded,
    Pipeline,
    Refused,
    Req,
    assert_decision,
    profile,
)

PAR_URL = "https://as.example.com/par"
PAR: dict[str, dict[str, object]] = {"dpop": {"par_path": "/par"}}
PUSHED = ("response_type=code&client_id=app&redirect_uri=https://app.example/cb"
          "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256")

CASES: tuple[Case, ...] = (
    Case("a proof for the PAR URL binds the pushed request to its key",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=PAR_URL),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}), settings=PAR),
    Case("a proof signed for the token endpoint is refused at the PAR endpoint",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=TOKEN_URL),)),
         Refused(INVALID_DPOP, "dpop.htu_mismatch"), settings=PAR),
    Case("a dpop_jkt that names the proof's key",
         lambda p, env: Req(f"{PUSHED}&dpop_jkt={CLIENT.jkt}", dpop=(p.proof(htu=PAR_URL),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}), settings=PAR),
    Case("a dpop_jkt that names another key is refused",
         lambda p, env: Req(f"{PUSHED}&dpop_jkt={OTHER.jkt}", dpop=(p.proof(htu=PAR_URL),)),
         Refused("invalid_request", "dpop.jkt_mismatch"), settings=PAR),
    Case("a dpop_jkt without a proof is for the upstream to bind the code to",
         lambda p, env: Req(f"{PUSHED}&dpop_jkt={OTHER.jkt}"),
         Forwarded(Action.OK, absent=("DPoP-JKT",)), settings=PAR),
    Case("a proof without the server's nonce",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=PAR_URL),)),
         Refused("use_dpop_nonce", "dpop.nonce_missing"), settings=profile(PAR, NONCES)),
    Case("a proof sent twice is refused the second time",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=PAR_URL),)),
         Refused(INVALID_DPOP, "dpop.jti_replayed"), settings=PAR, sends=2),
    Case("a store that is down (closed)",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=PAR_URL),)),
         Refused("temporarily_unavailable", "store.unavailable", 503, {"Retry-After": "1"}),
         settings=profile(PAR, STORE_DOWN)),
    Case("a store that is down (open)",
         lambda p, env: Req(PUSHED, dpop=(p.proof(htu=PAR_URL),)),
         Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt, "Replay-Check": "skipped"}),
         settings=profile(PAR, STORE_DOWN_OPEN)),
)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_decide_par(pipeline: Pipeline, case: Case) -> None:
    env = pipeline.env(case.settings)
    request = case.request(pipeline, env).token_request()
    for _ in range(case.sends):
        decision = await ParDecider.bind(env)(request)
    assert_decision(decision, case.expect, action_header=False)
    if isinstance(decision, Forward):
        assert decision.summary.result_code == "par.ok"
        # The pushed request is not a token request: only what the proof established.
        assert {name for name, _ in decision.context} <= {"DPoP-JKT", "Replay-Check"}


async def test_a_proof_for_the_par_endpoint_does_not_serve_at_the_token_endpoint(
        pipeline: Pipeline) -> None:
    env = pipeline.env(PAR)
    proof = pipeline.proof(htu=PAR_URL)
    refused = await decide(Req(f"{CC}&client_id=spa", dpop=(proof,)).token_request(), env)
    assert_decision(refused, Refused(INVALID_DPOP, "dpop.htu_mismatch"))
    # Refused there, it was not burned: it still serves where it was signed for.
    assert_decision(await ParDecider.bind(env)(Req(PUSHED, dpop=(proof,)).token_request()),
                    Forwarded(Action.OK, {"DPoP-JKT": CLIENT.jkt}), action_header=False)
