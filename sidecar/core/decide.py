"""The decision: a parsed token request in, a `Decision` out (README step 3, "Decide").

`TokenDecider` reads what the request presents (sidecar/core/presented.py: the certificate,
then the client credentials), then runs `STEPS` in order; each step reads the request and what
earlier steps found (`Facts`, sidecar/core/steps.py), and either records more facts or returns
the `OAuthError` that ends the request. Reading the list is reading the pipeline; each step
holds only the part of the policy it reads, bound once (`bind_steps`). The steps about the
client are in sidecar/core/client_steps.py. Steps that need the store are async; nothing here
imports aiohttp or redis, so the same core serves the proxy and the decision API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sidecar.core.binding import CheckRefreshBinding, refresh_binding
from sidecar.core.client_authentication.client_policy import check_client_policy
from sidecar.core.client_steps import (
    AuthenticateClient,
    CheckAttestation,
    RequireClientIdentification,
)
from sidecar.core.grants.names import JWT_BEARER, GrantResult
from sidecar.core.grants.validate import validate_grant
from sidecar.core.jwt_bearer import JwtBearerPolicy, verify_jwt_bearer
from sidecar.core.presented import ReadPresented
from sidecar.core.steps import (
    BurnReplays,
    CheckDpopProof,
    Facts,
    ProofFacts,
    Step,
    StepBinder,
    StepContext,
    bind_steps,
    presented_grant_type,
    run_steps,
)
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, Respond, TokenRequest
from sidecar.ports import Clock, JwksSource
from sidecar.settings import GrantsSettings

__all__ = ["STEPS", "StepContext", "TokenDecider", "decide"]


@dataclass(frozen=True, slots=True)
class CheckGrant:
    """The grant's own rules (RFC 6749 §4, and the RFC of each extension grant), then the
    registered client's policy: allowed grants, DPoP and certificate binding required."""

    grants: GrantsSettings

    @classmethod
    def of(cls, env: StepContext) -> CheckGrant:
        return cls(env.policy.grants)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        result = validate_grant(request.parameters, self.grants)
        if isinstance(result, OAuthError):
            return result
        facts.grant = result
        if facts.auth is not None:
            return check_client_policy(facts.auth, result.grant_type,
                                       dpop_proof=bool(request.dpop),
                                       certificate=facts.certificate is not None)
        return None


@dataclass(frozen=True, slots=True)
class CheckJwtBearer:
    """RFC 7523 §3: with trusted issuers configured, the assertion grant is verified here."""

    jwt_bearer: JwtBearerPolicy
    clock: Clock
    jwks: JwksSource

    @classmethod
    def of(cls, env: StepContext) -> CheckJwtBearer | None:
        policy = env.policy.jwt_bearer
        return None if policy is None else cls(policy, env.clock, env.jwks)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        if facts.grant is None or facts.grant.grant_type != JWT_BEARER:
            return None
        verified = await verify_jwt_bearer(request.parameters.get("assertion"),
                                           policy=self.jwt_bearer, now=self.clock.now(),
                                           jwks=self.jwks)
        if isinstance(verified, OAuthError):
            return verified
        if verified.replay is not None:
            facts.replays.append(verified.replay)
        facts.context.extend(verified.context())
        return None


STEPS: Sequence[StepBinder[Facts]] = (
    CheckAttestation.of,
    RequireClientIdentification.of,
    AuthenticateClient.of,
    CheckGrant.of,
    CheckDpopProof.of,
    CheckJwtBearer.of,
    CheckRefreshBinding.of,
    BurnReplays.of,
)


@dataclass(frozen=True, slots=True)
class TokenDecider:
    """The token endpoint's decision with its steps bound to one `StepContext`: the proxy
    binds it once per runtime (sidecar/http/runtime.py), not once per request."""

    read_presented: ReadPresented
    steps: tuple[Step[Facts], ...]

    @classmethod
    def bind(cls, env: StepContext, binders: Sequence[StepBinder[Facts]] = STEPS) -> TokenDecider:
        return cls(ReadPresented.of(env), bind_steps(binders, env))

    async def __call__(self, request: TokenRequest) -> Decision:
        presented = self.read_presented(request)
        if isinstance(presented, OAuthError):
            unread = ProofFacts(presented_grant_type=presented_grant_type(request))
            return Respond(presented, unread.summary(presented.result_code,
                                                     presented.description))
        facts = Facts.of(presented, request)
        error = await run_steps(request, facts, self.steps)
        if error is not None:
            return Respond(error, facts.summary(error.result_code, error.description))
        if facts.grant is None:  # only a pipeline without CheckGrant gets here
            raise ValueError("the steps forwarded a request whose grant was never checked")
        return _forward(facts, facts.grant, request.parameters.get("scope") or "")


async def decide(request: TokenRequest, env: StepContext,
                 steps: Sequence[StepBinder[Facts]] = STEPS) -> Decision:
    """One decision with the steps bound for it: for a context used once (the decision API's
    call, whose policy is the call's own; the tests)."""
    return await TokenDecider.bind(env, steps)(request)


def _forward(facts: Facts, grant: GrantResult, requested_scope: str) -> Forward:
    client, cert, proof = facts.client, facts.certificate, facts.dpop
    auth = facts.auth
    context: list[tuple[str, str]] = [
        ("Action", grant.action.value),
        ("Grant-Type", grant.grant_type),
        # The registry knows what extraction cannot (self_signed_tls_client_auth).
        ("Client-Auth-Method", auth.method if auth else client.method),
    ]
    if auth is None:
        context.append(("Client-Authenticated", "false"))
    if client.client_id:
        context.append(("Client-Id", client.client_id))
    if proof is not None:
        context.append(("DPoP-JKT", proof.jkt))
    if cert is not None:
        context.append(("Client-Cert-S256", cert.x5t_s256))
        context.append(("Client-Cert", cert.url_encoded_pem()))
    if facts.replay_check_skipped:
        context.append(("Replay-Check", "skipped"))
    context.extend(grant.context)
    context.extend(facts.context)
    return Forward(
        action=grant.action,
        summary=facts.summary(_result_code(grant.action), f"{grant.grant_type} request is valid"),
        context=tuple(context),
        dpop_jkt=proof.jkt if proof else None,
        cert_s256=cert.x5t_s256 if cert else None,
        requested_scope=requested_scope,
        bind_refresh_token_to=refresh_binding(facts),
        replay_check_skipped=facts.replay_check_skipped,
    )


def _result_code(action: Action) -> str:
    return f"token.{action.value.lower()}"
