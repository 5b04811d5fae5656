"""What every decision shares: the environment, the facts the steps establish, and the steps
used by more than one endpoint (the DPoP proof, and burning single-use values last).

A step reads the request and the facts so far, and either records more facts or returns the
`OAuthError` that ends the request. `run_steps` runs a list of them in order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from sidecar import errors
from sidecar.core.attestation.legacy import LegacyAssertion
from sidecar.core.attestation.results import AttestedClient
from sidecar.core.client_authentication.client_policy import dpop_nonce_required
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.credentials import ClientCredentials
from sidecar.core.dpop import DpopProof, validate_proof
from sidecar.core.grants.names import GrantResult
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.policy import Policy
from sidecar.core.store_calls import StoreOutcome, store_call
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck, Summary, TokenRequest
from sidecar.ports import Clock, JwksSource, ReplayStore, SecretVerifier

DPOP_JTI = "dpop"  # store kind of DPoP proof jtis


@dataclass(frozen=True, slots=True)
class Env:
    policy: Policy
    store: ReplayStore
    clock: Clock
    jwks: JwksSource
    secrets: SecretVerifier


@dataclass(slots=True)
class Facts:
    """What the steps have established so far about one request."""

    certificate: ClientCertificate | None = None
    client: ClientCredentials | None = None
    auth: AuthenticatedClient | None = None  # set when a client registry is configured
    attested: AttestedClient | None = None  # a verified client attestation
    legacy_attestation: LegacyAssertion | None = None  # drafts -00...-02, in the body
    grant: GrantResult | None = None
    dpop: DpopProof | None = None
    refresh_bound_to: str | None = None
    replays: list[ReplayCheck] = field(default_factory=list)  # burned by the last step
    replay_check_skipped: bool = False
    context: list[tuple[str, str]] = field(default_factory=list)
    # The grant_type parameter as sent, for the log line of a request refused before (or
    # by) the grant checks: a PKCE or scope refusal is still a refusal of that grant.
    presented_grant_type: str = ""

    def summary(self, result_code: str, message: str) -> Summary:
        client = self.client
        return Summary(
            result_code=result_code,
            message=message,
            grant_type=self.grant.grant_type if self.grant else self.presented_grant_type,
            client_id=(client.client_id or "") if client else "",
            auth_method=client.method if client else "",
        )


Step = Callable[[TokenRequest, Facts, Env], Awaitable[OAuthError | None]]



async def run_steps(request: TokenRequest, env: Env,
                    steps: Sequence[Step]) -> tuple[Facts, OAuthError | None]:
    """Run the steps in order until one refuses; the facts, and the refusal if any."""
    facts = Facts(presented_grant_type=_loggable(request.parameters.get("grant_type", "")))
    for step in steps:
        error = await step(request, facts, env)
        if error is not None:
            return facts, error
    return facts, None


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_LOGGED_MAX = 128


def _loggable(value: str) -> str:
    """A client's value as a log field: bounded, printable ASCII (a human log line must not
    be split or forged by a CR/LF in a parameter). Metrics bound it further to known names."""
    return _UNPRINTABLE.sub("?", value[:_LOGGED_MAX])


async def check_dpop_proof(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    return check_proof(request, facts, env, env.policy.dpop.htu_targets)


def check_proof(request: TokenRequest, facts: Facts, env: Env,
                 htu_targets: frozenset[str]) -> OAuthError | None:
    policy = env.policy
    if facts.dpop is not None:
        return None  # already checked as the attestation's proof of possession
    if not request.dpop:
        if policy.dpop_required:
            # RFC 9449 §5.2: a client that must use DPoP and sends no proof is refused.
            return errors.invalid_dpop_proof("dpop.required", "A DPoP proof is required.")
        return None
    nonce_required = policy.nonce_required if facts.auth is None \
        else dpop_nonce_required(facts.auth, policy.nonce_required)
    proof = validate_proof(request.dpop, method=request.method, policy=policy.dpop,
                           now=env.clock.now(), nonces=policy.nonces,
                           nonce_required=nonce_required, htu_targets=htu_targets)
    if isinstance(proof, OAuthError):
        return proof
    accept_proof(facts, proof)
    return None


def accept_proof(facts: Facts, proof: DpopProof) -> None:
    facts.dpop = proof
    facts.replays.append(ReplayCheck(
        DPOP_JTI, proof.replay_key, proof.replay_ttl_seconds,
        # RFC 9449 §11.1; the error is invalid_dpop_proof (§5), not invalid_grant.
        errors.invalid_dpop_proof("dpop.jti_replayed", "The DPoP proof has been used before.")))


async def burn_replays(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    """Last of all, so that a request refused for another reason (a missing nonce, say) does
    not use up its single-use values: one atomic `SET NX` each."""
    for replay in facts.replays:
        outcome: StoreOutcome[bool] | OAuthError = await store_call(
            env.store.first_use(replay.kind, replay.value, replay.ttl_seconds), env.policy)
        if isinstance(outcome, OAuthError):
            return outcome
        if outcome.skipped:
            facts.replay_check_skipped = True
        elif not outcome.value:
            return replay.error
    return None
