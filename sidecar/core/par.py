"""Pushed authorization requests (RFC 9126) with DPoP (RFC 9449 §10.1): the proof is checked
with the PAR URL as `htu`, and a `dpop_jkt` that differs from the proof's key is refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sidecar import errors
from sidecar.core.policy import ProofPolicy
from sidecar.core.steps import (
    BurnReplays,
    ProofFacts,
    Step,
    StepBinder,
    StepContext,
    bind_steps,
    check_proof,
    presented_grant_type,
    run_steps,
)
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, Respond, TokenRequest
from sidecar.ports import Clock


@dataclass(frozen=True, slots=True)
class CheckParDpop:
    """RFC 9449 §10.1: the proof with the PAR URL as `htu`; a `dpop_jkt` that differs from
    the proof's key is refused."""

    proof: ProofPolicy
    htu_targets: frozenset[str]  # the PAR endpoint's public URL
    clock: Clock

    @classmethod
    def of(cls, env: StepContext) -> CheckParDpop:
        return cls(env.policy.proof, env.policy.par_htu_targets, env.clock)

    async def __call__(self, request: TokenRequest, facts: ProofFacts) -> OAuthError | None:
        error = check_proof(request, facts, self.proof, self.clock.now(), self.htu_targets,
                            nonce_required=self.proof.nonce_required)
        if error is not None:
            return error
        dpop_jkt = request.parameters.get("dpop_jkt")
        if dpop_jkt is not None and facts.dpop is not None and dpop_jkt != facts.dpop.jkt:
            return errors.invalid_request("dpop.jkt_mismatch",
                                          "dpop_jkt does not match the DPoP proof's key.")
        return None


PAR_STEPS: Sequence[StepBinder[ProofFacts]] = (CheckParDpop.of, BurnReplays.of)


@dataclass(frozen=True, slots=True)
class ParDecider:
    """The PAR endpoint's decision with its steps bound to one `StepContext`, once."""

    steps: tuple[Step[ProofFacts], ...]

    @classmethod
    def bind(cls, env: StepContext) -> ParDecider:
        return cls(bind_steps(PAR_STEPS, env))

    async def __call__(self, request: TokenRequest) -> Decision:
        facts = ProofFacts(presented_grant_type=presented_grant_type(request))
        error = await run_steps(request, facts, self.steps)
        if error is not None:
            return Respond(error, facts.summary(error.result_code, error.description))
        context = [("DPoP-JKT", facts.dpop.jkt)] if facts.dpop else []
        if facts.replay_check_skipped:
            context.append(("Replay-Check", "skipped"))
        return Forward(action=Action.OK, summary=facts.summary("par.ok", "PAR request is valid"),
                       context=tuple(context), dpop_jkt=facts.dpop.jkt if facts.dpop else None,
                       replay_check_skipped=facts.replay_check_skipped)
