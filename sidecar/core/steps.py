"""What every decision shares: the context the steps run in, the facts they establish, and
the steps used by more than one endpoint (the DPoP proof, and burning single-use values last).

A step is a frozen object holding only the part of the policy (and the ports) it reads, made
once from the `StepContext` by its `of` (`bind_steps`), not once per request. Called with the
request and the facts so far, it either records more facts or returns the `OAuthError` that
ends the request. `of` returns None when the configuration leaves the step nothing to check
(no attestation, no trusted issuers): the step is left out rather than asked every time.
`run_steps` runs the bound steps in order. The facts are typed by what is known when the
steps start: every endpoint's `ProofFacts` (the DPoP proof, the single-use values), and the
token endpoint's `Facts`, which are made only once the request's client credentials were read
(`Presented`), so no step has to ask whether they were.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from sidecar import errors
from sidecar.core.attestation.legacy import LegacyAssertion
from sidecar.core.attestation.results import AttestedClient
from sidecar.core.client_authentication.client_policy import dpop_nonce_required
from sidecar.core.client_authentication.policy import AuthenticatedClient
from sidecar.core.credentials import ClientCredentials
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.grants.names import GrantResult
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.policy import Policy, ProofPolicy
from sidecar.core.store_failures import StoreFailurePolicy, StoreOutcome, store_call
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck, Summary, TokenRequest
from sidecar.ports import Clock, JwksSource, ReplayStore, SecretVerifier

DPOP_JTI = "dpop"  # store kind of DPoP proof jtis


@dataclass(frozen=True, slots=True)
class StepContext:
    """What the steps (and the review of the upstream's answer) work with: the policy built
    from the configuration, and the ports. By convention the parameter is named `env`."""

    policy: Policy
    store: ReplayStore
    clock: Clock
    jwks: JwksSource
    secrets: SecretVerifier


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Presented:
    """What a token request presents, read before anything is checked: the certificate a
    trusted proxy passed, the client credentials, a legacy (drafts -00...-02) attestation."""

    certificate: Final[ClientCertificate | None]
    client: Final[ClientCredentials]
    legacy_attestation: Final[LegacyAssertion | None] = None


@dataclass(slots=True, kw_only=True)
class ProofFacts:
    """What every endpoint's steps establish: the DPoP proof, the single-use values to burn."""

    dpop: DpopProof | None = None
    replays: list[ReplayCheck] = field(default_factory=list)  # burned by the last step
    replay_check_skipped: bool = False
    # The grant_type parameter as sent, for the log line of a request refused before (or
    # by) the grant checks: a PKCE or scope refusal is still a refusal of that grant.
    presented_grant_type: str = ""

    def summary(self, result_code: str, message: str) -> Summary:
        return Summary(result_code=result_code, message=message,
                       grant_type=self.presented_grant_type)


@dataclass(slots=True, kw_only=True)
class Facts(ProofFacts):
    """What the token endpoint's steps have established so far about one request."""

    certificate: ClientCertificate | None
    client: ClientCredentials  # as presented; the attested client id once attested
    legacy_attestation: LegacyAssertion | None = None
    auth: AuthenticatedClient | None = None  # set when a client registry is configured
    attested: AttestedClient | None = None  # a verified client attestation
    grant: GrantResult | None = None  # set by CheckGrant; None before it
    refresh_bound_to: str | None = None
    # Context headers found by the checks (attestation, registry, assertion grant).
    context: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, presented: Presented, request: TokenRequest) -> Facts:
        return cls(certificate=presented.certificate, client=presented.client,
                   legacy_attestation=presented.legacy_attestation,
                   presented_grant_type=presented_grant_type(request))

    def summary(self, result_code: str, message: str) -> Summary:
        return Summary(
            result_code=result_code,
            message=message,
            grant_type=self.grant.grant_type if self.grant else self.presented_grant_type,
            client_id=self.client.client_id or "",
            auth_method=self.client.method,
        )


F = TypeVar("F", bound=ProofFacts)
F_contra = TypeVar("F_contra", bound=ProofFacts, contravariant=True)


class Step(Protocol[F_contra]):
    """One bound step: the request and the facts so far in, a refusal or None out."""

    def __call__(self, request: TokenRequest, facts: F_contra, /) -> Awaitable[OAuthError | None]:
        ...


# A step's `of`: the step bound to one context, or None when it has nothing to check there.
StepBinder = Callable[[StepContext], Step[F] | None]


def bind_steps(binders: Sequence[StepBinder[F]], env: StepContext) -> tuple[Step[F], ...]:
    """The steps bound to `env`, in order, without those the configuration leaves idle."""
    return tuple(step for binder in binders if (step := binder(env)) is not None)


async def run_steps(request: TokenRequest, facts: F,
                    steps: Sequence[Step[F]]) -> OAuthError | None:
    """Run the steps in order until one refuses; the refusal if any (the facts are filled)."""
    for step in steps:
        error = await step(request, facts)
        if error is not None:
            return error
    return None


@dataclass(frozen=True, slots=True)
class StoreAccess:
    """What a step that reads or writes the store holds: the store, and what a failing one
    means (sidecar/core/store_failures.py)."""

    store: ReplayStore
    failures: StoreFailurePolicy

    @classmethod
    def of(cls, env: StepContext) -> StoreAccess:
        return cls(env.store, env.policy.store)


_UNPRINTABLE = re.compile(r"[^\x20-\x7e]")
_LOGGED_MAX = 128


def presented_grant_type(request: TokenRequest) -> str:
    return _loggable(request.parameters.get("grant_type", ""))


def _loggable(value: str) -> str:
    """A client's value as a log field: bounded, printable ASCII (a human log line must not
    be split or forged by a CR/LF in a parameter). Metrics bound it further to known names."""
    return _UNPRINTABLE.sub("?", value[:_LOGGED_MAX])


@dataclass(frozen=True, slots=True)
class CheckDpopProof:
    """RFC 9449 §4.3 at the token endpoint: the proof, its `htu` the token endpoint's URL; a
    registered client may require the server's nonce of its own (`dpop_nonce_required`)."""

    proof: ProofPolicy
    clock: Clock

    @classmethod
    def of(cls, env: StepContext) -> CheckDpopProof:
        return cls(env.policy.proof, env.clock)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        policy = self.proof
        nonce_required = policy.nonce_required if facts.auth is None \
            else dpop_nonce_required(facts.auth, policy.nonce_required)
        return check_proof(request, facts, policy, self.clock.now(), policy.dpop.htu_targets,
                           nonce_required=nonce_required)


def check_proof(request: TokenRequest, facts: ProofFacts, policy: ProofPolicy, now: float,
                htu_targets: frozenset[str], *, nonce_required: bool) -> OAuthError | None:
    if facts.dpop is not None:
        return None  # already checked as the attestation's proof of possession
    if not request.dpop:
        if policy.required:
            # RFC 9449 §5.2: a client that must use DPoP and sends no proof is refused.
            return errors.invalid_dpop_proof("dpop.required", "A DPoP proof is required.")
        return None
    proof = validate_proof(request.dpop, method=request.method, policy=policy.dpop,
                           now=now, nonces=policy.nonces,
                           nonce_required=nonce_required, htu_targets=htu_targets)
    if isinstance(proof, OAuthError):
        return proof
    accept_proof(facts, proof)
    return None


def accept_proof(facts: ProofFacts, proof: DpopProof) -> None:
    facts.dpop = proof
    facts.replays.append(ReplayCheck(DPOP_JTI, proof.replay_key, proof.replay_ttl_seconds,
                                     _JTI_REPLAYED))


# RFC 9449 §11.1; the error is invalid_dpop_proof (§5), not invalid_grant. Fast path: made
# once (an OAuthError is frozen), not once for every proof accepted.
_JTI_REPLAYED = errors.invalid_dpop_proof("dpop.jti_replayed",
                                          "The DPoP proof has been used before.")


@dataclass(frozen=True, slots=True)
class BurnReplays:
    """Last of all, so that a request refused for another reason (a missing nonce, say) does
    not use up its single-use values: one atomic `SET NX` each."""

    store: StoreAccess

    @classmethod
    def of(cls, env: StepContext) -> BurnReplays:
        return cls(StoreAccess.of(env))

    async def __call__(self, request: TokenRequest, facts: ProofFacts) -> OAuthError | None:
        access = self.store
        for replay in facts.replays:
            outcome: StoreOutcome[bool] | OAuthError = await store_call(
                access.store.first_use(replay.kind, replay.value, replay.ttl_seconds),
                access.failures)
            if isinstance(outcome, OAuthError):
                return outcome
            if outcome.skipped:
                facts.replay_check_skipped = True
            elif not outcome.value:
                return replay.error
        return None
