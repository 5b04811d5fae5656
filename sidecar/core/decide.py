"""The decision: a parsed token request in, a `Decision` out (README step 3, "Decide").

`decide` reads what the request presents (`read_presented`: the certificate, then the client
credentials), then runs `STEPS` in order; each step reads the request and what earlier steps
found (`Facts`, sidecar/core/steps.py), and either records more facts or returns the
`OAuthError` that ends the request. Reading the list is reading the pipeline. Steps that need
the store are async; nothing here imports aiohttp or redis, so the same core serves the proxy
and the decision API.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from sidecar import errors
from sidecar.core.attestation.authentication import authenticate_with_attestation
from sidecar.core.attestation.config import ATTEST_JWT_CLIENT_AUTH_DPOP
from sidecar.core.attestation.legacy import LegacyAssertion, legacy_client_assertion
from sidecar.core.attestation.results import AttestedClient
from sidecar.core.attestation.verification import attestation_mode, verify_attestation
from sidecar.core.binding import check_refresh_binding, refresh_binding
from sidecar.core.client_authentication.client_policy import check_client_policy, context_headers
from sidecar.core.client_authentication.methods import authenticate, unidentified_client
from sidecar.core.credentials import extract_client_credentials
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.grants.names import JWT_BEARER, PRE_AUTHORIZED_CODE, GrantResult
from sidecar.core.grants.validate import validate_grant
from sidecar.core.jwt_bearer import verify_jwt_bearer
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.parse import parse_client_certificate
from sidecar.core.steps import (
    Facts,
    Presented,
    ProofFacts,
    Step,
    StepContext,
    accept_proof,
    burn_replays,
    check_dpop_proof,
    presented_grant_type,
    run_steps,
)
from sidecar.errors import OAuthError
from sidecar.model import Action, Decision, Forward, Respond, TokenRequest

__all__ = ["STEPS", "StepContext", "decide", "read_presented"]


def read_presented(request: TokenRequest, env: StepContext) -> Presented | OAuthError:
    """The certificate a trusted proxy passed, then the client credentials: what every
    check after them reads."""
    certificate = read_certificate(request, env)
    if isinstance(certificate, OAuthError):
        return certificate
    return identify_client(request, certificate, env)


def read_certificate(request: TokenRequest,
                     env: StepContext) -> ClientCertificate | OAuthError | None:
    return parse_client_certificate(
        request.client_cert_header, env.policy.cert_format, request.client_cert_chain_header,
        cache=env.policy.certificates)


def identify_client(request: TokenRequest, certificate: ClientCertificate | None,
                    env: StepContext) -> Presented | OAuthError:
    params = request.parameters
    legacy: LegacyAssertion | None = None
    attestation = env.policy.attestation
    if attestation is not None and attestation.accept_legacy_client_assertion:
        found = legacy_client_assertion(params)
        if isinstance(found, OAuthError):
            return found
        if found is not None:
            if request.attestation or request.attestation_pop:
                return errors.invalid_request(
                    "attestation.multiple_methods",
                    "The request uses more than one client authentication method.")
            legacy, params = found, found.remaining
    credentials = extract_client_credentials(
        request.authorization, params, certificate is not None,
        realm=env.policy.client_auth.issuer)
    if isinstance(credentials, OAuthError):
        return credentials
    return Presented(certificate, credentials, legacy)


async def check_attestation(request: TokenRequest, facts: Facts,
                            env: StepContext) -> OAuthError | None:
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
        accept_proof(facts, proof)
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


async def require_client_identification(request: TokenRequest, facts: Facts,
                                        env: StepContext) -> OAuthError | None:
    """Every token request names its client, whoever authenticates it (RFC 6749 §3.2.1:
    confidential clients authenticate, public clients send client_id): Basic, client_id,
    a client assertion, a certificate or an attestation. Without one the request is refused
    here, registry or not, rather than left to an upstream that may issue a token to nobody.
    The grants whose own credential may stand alone are the exceptions (`_MAY_BE_ANONYMOUS`)."""
    client = facts.client
    attested = facts.attested is not None or (
        env.policy.attestation is None and bool(request.attestation))  # for the upstream
    if client.client_id is not None or facts.certificate is not None or attested:
        return None
    if request.parameters.get("grant_type") in _MAY_BE_ANONYMOUS:
        return None
    return unidentified_client(client, env.policy.client_auth.issuer)


_MAY_BE_ANONYMOUS = frozenset({
    JWT_BEARER,  # RFC 7523 §3.1: client authentication is optional for the assertion grant
    # OpenID4VCI 1.0 §6.1: for the pre-authorized code, client authentication (and so
    # client_id) is optional; wallets may be anonymous.
    PRE_AUTHORIZED_CODE,
})


async def authenticate_client(request: TokenRequest, facts: Facts,
                              env: StepContext) -> OAuthError | None:
    """With a client registry, the sidecar authenticates the client itself (RFC 6749 §2.3,
    RFC 7523 §3, RFC 8705 §2); the assertion's jti is left for the last step. A verified
    attestation authenticates the client by itself, unless the registry marks it as an
    additional signal for that client."""
    registry = env.policy.registry
    if facts.attested is not None:
        attested = await _authenticate_attested(facts, env, facts.attested)
        if attested is not None:
            return attested if isinstance(attested, OAuthError) else None
    if registry is None:
        return None
    result = await authenticate(
        facts.client, facts.certificate, registry, policy=env.policy.client_auth,
        now=env.clock.now(), jwks=env.jwks, secrets=env.secrets)
    if isinstance(result, OAuthError):
        return result
    facts.auth = result
    if result.replay is not None:
        facts.replays.append(result.replay)
    facts.context.extend(context_headers(result))
    return None


async def _authenticate_attested(facts: Facts, env: StepContext,
                                 attested: AttestedClient) -> OAuthError | bool | None:
    """True when the attestation authenticated the client; None to go on with the other
    method (attestation as an additional signal)."""
    auth = authenticate_with_attestation(attested, facts.client, env.policy.registry,
                                         unknown=env.policy.client_auth.unknown)
    if auth is None or isinstance(auth, OAuthError):
        return auth
    facts.auth = auth
    facts.client = replace(facts.client, client_id=attested.client_id, method=auth.method)
    facts.context.extend(context_headers(auth))
    return True


async def check_grant(request: TokenRequest, facts: Facts, env: StepContext) -> OAuthError | None:
    result = validate_grant(request.parameters, env.policy.grants)
    if isinstance(result, OAuthError):
        return result
    facts.grant = result
    if facts.auth is not None:
        # The registered policy: allowed grants, DPoP and certificate binding required.
        return check_client_policy(facts.auth, result.grant_type, dpop_proof=bool(request.dpop),
                                   certificate=facts.certificate is not None)
    return None


async def check_jwt_bearer(request: TokenRequest, facts: Facts,
                           env: StepContext) -> OAuthError | None:
    """RFC 7523 §3: with trusted issuers configured, the assertion grant is verified here."""
    policy = env.policy.jwt_bearer
    if policy is None or facts.grant is None or facts.grant.grant_type != JWT_BEARER:
        return None
    verified = await verify_jwt_bearer(request.parameters.get("assertion"), policy=policy,
                                       now=env.clock.now(), jwks=env.jwks)
    if isinstance(verified, OAuthError):
        return verified
    if verified.replay is not None:
        facts.replays.append(verified.replay)
    facts.context.extend(verified.context())
    return None


STEPS: Sequence[Step[Facts]] = (
    check_attestation,
    require_client_identification,
    authenticate_client,
    check_grant,
    check_dpop_proof,
    check_jwt_bearer,
    check_refresh_binding,
    burn_replays,
)


async def decide(request: TokenRequest, env: StepContext,
                 steps: Sequence[Step[Facts]] = STEPS) -> Decision:
    presented = read_presented(request, env)
    if isinstance(presented, OAuthError):
        unread = ProofFacts(presented_grant_type=presented_grant_type(request))
        return Respond(presented, unread.summary(presented.result_code, presented.description))
    facts = Facts.of(presented, request)
    error = await run_steps(request, facts, env, steps)
    if error is not None:
        return Respond(error, facts.summary(error.result_code, error.description))
    if facts.grant is None:  # only a pipeline without check_grant gets here
        raise ValueError("the steps forwarded a request whose grant was never checked")
    return _forward(facts, facts.grant, request.parameters.get("scope") or "")


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
