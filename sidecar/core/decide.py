"""The decision: a parsed token request in, a `Decision` out (SPEC step 3).

`decide` runs `STEPS` in order; each step reads the request and what earlier steps found
(`Facts`), and either records more facts or returns the `OAuthError` that ends the request.
Reading the list is reading the pipeline. Steps that need the store are async; nothing here
imports aiohttp or redis, so the same core serves the proxy and the decision API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

from sidecar import errors
from sidecar.core.attestation import (
    ATTEST_JWT_CLIENT_AUTH_DPOP,
    ATTESTATION_METHODS,
    AttestedClient,
    LegacyAssertion,
    attestation_mode,
    authenticate_with_attestation,
    legacy_client_assertion,
    verify_attestation,
)
from sidecar.core.attestation import REFRESH_BINDING_KIND as ATTESTATION_BINDING
from sidecar.core.attestation import check_refresh_binding as check_attestation_binding
from sidecar.core.client_auth import ClientCredentials, extract_client_credentials
from sidecar.core.client_authn import (
    AuthenticatedClient,
    authenticate,
    check_client_policy,
    context_headers,
    dpop_nonce_required,
)
from sidecar.core.dpop import DpopProof, validate_proof
from sidecar.core.grants import GrantResult, validate_grant
from sidecar.core.jwks import JwksSource
from sidecar.core.jwt_bearer import verify_jwt_bearer
from sidecar.core.mtls import ClientCertificate, parse_client_certificate
from sidecar.core.policy import Policy
from sidecar.core.secrets import SecretVerifier
from sidecar.core.store_calls import StoreOutcome, store_call
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, ReplayCheck, Respond, Summary, TokenRequest
from sidecar.ports import Clock, ReplayStore

REFRESH_BINDING = "refresh"  # store kind: sha256(refresh_token) -> "jkt:<thumbprint>"
DPOP_JTI = "dpop"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


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

    def summary(self, result_code: str, message: str) -> Summary:
        client = self.client
        return Summary(
            result_code=result_code,
            message=message,
            grant_type=self.grant.grant_type if self.grant else "",
            client_id=(client.client_id or "") if client else "",
            auth_method=client.method if client else "",
        )


Step = Callable[[TokenRequest, Facts, Env], Awaitable[OAuthError | None]]


async def read_certificate(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    parsed = parse_client_certificate(
        request.client_cert_header, env.policy.cert_format, request.client_cert_chain_header)
    if isinstance(parsed, OAuthError):
        return parsed
    facts.certificate = parsed
    return None


async def identify_client(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    params = request.parameters
    attestation = env.policy.attestation
    if attestation is not None and attestation.accept_legacy_client_assertion:
        legacy = legacy_client_assertion(params)
        if isinstance(legacy, OAuthError):
            return legacy
        if legacy is not None:
            if request.attestation or request.attestation_pop:
                return errors.invalid_request(
                    "attestation.multiple_methods",
                    "The request uses more than one client authentication method.")
            facts.legacy_attestation = legacy
            params = legacy.remaining
    credentials = extract_client_credentials(
        request.authorization, params, facts.certificate is not None)
    if isinstance(credentials, OAuthError):
        return credentials
    facts.client = credentials
    return None


async def check_attestation(request: TokenRequest, facts: Facts,
                            env: Env) -> OAuthError | None:
    """draft-ietf-oauth-attestation-based-client-auth §7: verify the client attestation and
    its proof of possession (a PoP JWT, or in combined mode the DPoP proof)."""
    policy = env.policy.attestation
    if policy is None:
        return None
    legacy = facts.legacy_attestation
    attestation, pop = (legacy.attestation, legacy.pop) if legacy \
        else (request.attestation, request.attestation_pop)
    mode = attestation_mode(attestation, pop, request.dpop)
    if mode is None:
        return None
    if mode == ATTEST_JWT_CLIENT_AUTH_DPOP:
        # Combined mode: the DPoP proof is the PoP and its nonce is the attestation
        # challenge, which verify_attestation checks; the DPoP nonce check steps aside.
        proof = validate_proof(request.dpop, method=request.method, policy=env.policy.dpop,
                               now=env.clock.now(), nonces=None, nonce_required=False)
        if isinstance(proof, OAuthError):
            return proof
        _accept_proof(facts, proof)
    result = await verify_attestation(
        attestation, pop, dpop_proof=facts.dpop if mode == ATTEST_JWT_CLIENT_AUTH_DPOP else None,
        body_client_id=request.parameters.get("client_id"), policy=policy,
        now=env.clock.now(), jwks=env.jwks, dpop_nonces=env.policy.nonces,
        dpop_nonce_required=env.policy.nonce_required, legacy=legacy is not None)
    if result is None or isinstance(result, OAuthError):
        return result
    facts.attested = result
    if result.replay is not None:
        facts.replays.append(result.replay)
    facts.context.extend(result.context())
    return None


async def authenticate_client(request: TokenRequest, facts: Facts,
                              env: Env) -> OAuthError | None:
    """With a client registry, the sidecar authenticates the client itself (RFC 6749 §2.3,
    RFC 7523 §3, RFC 8705 §2); the assertion's jti is left for the last step. A verified
    attestation authenticates the client by itself, unless the registry marks it as an
    additional signal for that client."""
    registry = env.policy.registry
    assert facts.client is not None
    if facts.attested is not None:
        attested = await _authenticate_attested(facts, env, facts.attested)
        if attested is not None:
            return attested if isinstance(attested, OAuthError) else None
    if registry is None:
        return None
    result = await authenticate(
        facts.client, facts.certificate, registry, policy=env.policy.client_auth,
        now=env.clock.now(), store=env.store, jwks=env.jwks, secrets=env.secrets,
        burn_replay=False)
    if isinstance(result, OAuthError):
        return result
    facts.auth = result
    if result.replay is not None:
        facts.replays.append(result.replay)
    facts.context.extend(context_headers(result))
    return None


async def _authenticate_attested(facts: Facts, env: Env,
                                 attested: AttestedClient) -> OAuthError | bool | None:
    """True when the attestation authenticated the client; None to go on with the other
    method (attestation as an additional signal)."""
    assert facts.client is not None
    auth = authenticate_with_attestation(attested, facts.client, env.policy.registry,
                                         unknown=env.policy.client_auth.unknown)
    if auth is None or isinstance(auth, OAuthError):
        return auth
    facts.auth = auth
    facts.client = replace(facts.client, client_id=attested.client_id, method=auth.method)
    facts.context.extend(context_headers(auth))
    return True


async def check_grant(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    result = validate_grant(request.parameters, env.policy.grants)
    if isinstance(result, OAuthError):
        return result
    facts.grant = result
    if facts.auth is not None:
        # The registered policy: allowed grants, DPoP and certificate binding required.
        return check_client_policy(facts.auth, result.grant_type, dpop_proof=bool(request.dpop),
                                   certificate=facts.certificate is not None)
    return None


async def check_jwt_bearer(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    """RFC 7523 §3: with trusted issuers configured, the assertion grant is verified here."""
    policy = env.policy.jwt_bearer
    if policy is None or facts.grant is None or facts.grant.grant_type != JWT_BEARER_GRANT:
        return None
    verified = await verify_jwt_bearer(request.parameters.get("assertion"), policy=policy,
                                       now=env.clock.now(), store=env.store, jwks=env.jwks,
                                       burn_replay=False)
    if isinstance(verified, OAuthError):
        return verified
    if verified.replay is not None:
        facts.replays.append(verified.replay)
    facts.context.extend(verified.context())
    return None


async def check_dpop_proof(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    return _check_proof(request, facts, env, env.policy.dpop.htu_targets)


def _check_proof(request: TokenRequest, facts: Facts, env: Env,
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
    _accept_proof(facts, proof)
    return None


def _accept_proof(facts: Facts, proof: DpopProof) -> None:
    facts.dpop = proof
    facts.replays.append(ReplayCheck(
        DPOP_JTI, proof.replay_key, proof.replay_ttl_seconds,
        # RFC 9449 §11.1; the error is invalid_dpop_proof (§5), not invalid_grant.
        errors.invalid_dpop_proof("dpop.jti_replayed", "The DPoP proof has been used before.")))


async def check_refresh_binding(request: TokenRequest, facts: Facts,
                                env: Env) -> OAuthError | None:
    """RFC 9449 §5: a refresh token bound to a DPoP key is only refreshed with that key."""
    refresh_token = request.parameters.get("refresh_token")
    if facts.grant is None or facts.grant.grant_type != "refresh_token" or not refresh_token:
        return None
    outcome = await store_call(env.store.get_binding(REFRESH_BINDING, refresh_token), env.policy)
    if isinstance(outcome, OAuthError):
        return outcome
    if outcome.skipped:
        facts.replay_check_skipped = True
        return None
    bound = outcome.value
    if bound is None:
        return None
    kind, _, value = bound.partition(":")
    if kind == ATTESTATION_BINDING:
        # The attestation draft: an attested client's refresh token needs the same instance.
        error = check_attestation_binding(value, facts.attested)
        if error is not None:
            return error
    elif kind == "x5t":
        # RFC 8705 §4: a public client's refresh token bound to its certificate.
        presented = facts.certificate.x5t_s256 if facts.certificate else None
        if presented != value:
            return errors.invalid_grant("binding.certificate_mismatch",
                                        "The refresh token is bound to another certificate.")
    else:
        presented = facts.dpop.jkt if facts.dpop else None
        if presented != value:
            return errors.invalid_grant("binding.dpop_key_mismatch",
                                        "The refresh token is bound to another DPoP key.")
    facts.refresh_bound_to = bound
    return None


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


STEPS: Sequence[Step] = (
    read_certificate,
    identify_client,
    check_attestation,
    authenticate_client,
    check_grant,
    check_dpop_proof,
    check_jwt_bearer,
    check_refresh_binding,
    burn_replays,
)


async def decide(request: TokenRequest, env: Env, steps: Sequence[Step] = STEPS) -> Decision:
    facts = Facts()
    for step in steps:
        error = await step(request, facts, env)
        if error is not None:
            return Respond(error, facts.summary(error.result_code, error.description))
    return _forward(facts)


def _forward(facts: Facts) -> Forward:
    grant, client, cert, proof = facts.grant, facts.client, facts.certificate, facts.dpop
    assert grant is not None and client is not None  # every step ran
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
        bind_refresh_token_to=_refresh_binding(facts),
    )


def _refresh_binding(facts: Facts) -> str | None:
    """Refresh tokens issued to public clients are bound to the DPoP key (RFC 9449 §5) or,
    without DPoP, to the client certificate (RFC 8705 §4); a rotated refresh token inherits
    the binding of the one it replaces. Confidential clients are not bound: their refresh
    tokens are already bound to their credentials."""
    if facts.refresh_bound_to:
        return facts.refresh_bound_to
    if facts.attested is not None and facts.auth is not None \
            and facts.auth.method in ATTESTATION_METHODS:
        return facts.attested.refresh_binding
    if not _is_public(facts):
        return None
    if facts.dpop:
        return f"jkt:{facts.dpop.jkt}"
    if facts.certificate:
        return f"x5t:{facts.certificate.x5t_s256}"
    return None


def _is_public(facts: Facts) -> bool:
    if facts.auth is not None and facts.auth.client is not None:
        return facts.auth.client.is_public
    return facts.client is not None and facts.client.method == "none"


def _result_code(action: Action) -> str:
    return f"token.{action.value.lower()}"


# ---------------------------------------------------------------------------------------
# Pushed authorization requests (RFC 9126) with DPoP (RFC 9449 §10.1).


async def check_par_dpop(request: TokenRequest, facts: Facts, env: Env) -> OAuthError | None:
    error = _check_proof(request, facts, env, env.policy.par_htu_targets)
    if error is not None:
        return error
    dpop_jkt = request.parameters.get("dpop_jkt")
    if dpop_jkt is not None and facts.dpop is not None and dpop_jkt != facts.dpop.jkt:
        # RFC 9449 §10.1: a dpop_jkt that differs from the proof's key is refused.
        return errors.invalid_request("dpop.jkt_mismatch",
                                      "dpop_jkt does not match the DPoP proof's key.")
    return None


PAR_STEPS: Sequence[Step] = (check_par_dpop, burn_replays)


async def decide_par(request: TokenRequest, env: Env) -> Decision:
    facts = Facts()
    for step in PAR_STEPS:
        error = await step(request, facts, env)
        if error is not None:
            return Respond(error, facts.summary(error.result_code, error.description))
    context = [("DPoP-JKT", facts.dpop.jkt)] if facts.dpop else []
    if facts.replay_check_skipped:
        context.append(("Replay-Check", "skipped"))
    return Forward(action=Action.OK, summary=facts.summary("par.ok", "PAR request is valid"),
                   context=tuple(context), dpop_jkt=facts.dpop.jkt if facts.dpop else None)
