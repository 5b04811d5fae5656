"""Pushed authorization requests (RFC 9126) with DPoP (RFC 9449 §10.1): the proof is checked
with the PAR URL as `htu`, and a `dpop_jkt` that differs from the proof's key is refused."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar import errors
from sidecar.core.steps import (
    ProofFacts,
    Step,
    StepContext,
    burn_replays,
    check_proof,
    presented_grant_type,
    run_steps,
)
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, Respond, TokenRequest


async def check_par_dpop(request: TokenRequest, facts: ProofFacts,
                         env: StepContext) -> OAuthError | None:
    error = check_proof(request, facts, env.policy.proof, env.clock.now(),
                        env.policy.par_htu_targets, nonce_required=env.policy.nonce_required)
    if error is not None:
        return error
    dpop_jkt = request.parameters.get("dpop_jkt")
    if dpop_jkt is not None and facts.dpop is not None and dpop_jkt != facts.dpop.jkt:
        # RFC 9449 §10.1: a dpop_jkt that differs from the proof's key is refused.
        return errors.invalid_request("dpop.jkt_mismatch",
                                      "dpop_jkt does not match the DPoP proof's key.")
    return None


PAR_STEPS: Sequence[Step[ProofFacts]] = (check_par_dpop, burn_replays)


async def decide_par(request: TokenRequest, env: StepContext) -> Decision:
    facts = ProofFacts(presented_grant_type=presented_grant_type(request))
    error = await run_steps(request, facts, env, PAR_STEPS)
    if error is not None:
        return Respond(error, facts.summary(error.result_code, error.description))
    context = [("DPoP-JKT", facts.dpop.jkt)] if facts.dpop else []
    if facts.replay_check_skipped:
        context.append(("Replay-Check", "skipped"))
    return Forward(action=Action.OK, summary=facts.summary("par.ok", "PAR request is valid"),
                   context=tuple(context), dpop_jkt=facts.dpop.jkt if facts.dpop else None,
                   replay_check_skipped=facts.replay_check_skipped)
