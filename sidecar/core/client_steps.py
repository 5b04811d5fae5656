"""The token endpoint's steps about the client (sidecar/core/decide.py `STEPS`): a client
attestation, the client's identification, and its authentication against the registry."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sidecar.core.attestation.authentication import authenticate_with_attestation
from sidecar.core.attestation.config import ATTEST_JWT_CLIENT_AUTH_DPOP, AttestationPolicy
from sidecar.core.attestation.results import AttestedClient
from sidecar.core.attestation.verification import attestation_mode, verify_attestation
from sidecar.core.client_authentication.client_policy import context_headers
from sidecar.core.client_authentication.methods import authenticate, unidentified_client
from sidecar.core.client_authentication.policy import ClientAuthPolicy
from sidecar.core.clients.model import Registry
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.grants.names import JWT_BEARER, PRE_AUTHORIZED_CODE
from sidecar.core.policy import ProofPolicy
from sidecar.core.steps import Facts, StepContext, accept_proof
from sidecar.errors import OAuthError
from sidecar.model import TokenRequest
from sidecar.ports import Clock, JwksSource, SecretVerifier


@dataclass(frozen=True, slots=True)
class CheckAttestation:
    """draft-ietf-oauth-attestation-based-client-auth §7: verify the client attestation and
    its proof of possession (a PoP JWT, or in combined mode the DPoP proof)."""

    attestation: AttestationPolicy
    proof: ProofPolicy
    clock: Clock
    jwks: JwksSource

    @classmethod
    def of(cls, env: StepContext) -> CheckAttestation | None:
        attestation = env.policy.attestation
        return None if attestation is None \
            else cls(attestation, env.policy.proof, env.clock, env.jwks)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        legacy = facts.legacy_attestation
        attestation, pop = (legacy.attestation, legacy.pop) if legacy \
            else (request.attestation, request.attestation_pop)
        mode = attestation_mode(attestation, pop, request.dpop)
        if mode is None:
            return None
        proof = self.proof
        if mode == ATTEST_JWT_CLIENT_AUTH_DPOP:
            # Combined mode: the DPoP proof is the PoP and its nonce is the attestation
            # challenge, which verify_attestation checks; the DPoP nonce check steps aside.
            combined = validate_proof(request.dpop, method=request.method, policy=proof.dpop,
                                      now=self.clock.now(), nonces=None, nonce_required=False)
            if isinstance(combined, OAuthError):
                return combined
            accept_proof(facts, combined)
        result = await verify_attestation(
            attestation, pop,
            dpop_proof=facts.dpop if mode == ATTEST_JWT_CLIENT_AUTH_DPOP else None,
            body_client_id=request.parameters.get("client_id"), policy=self.attestation,
            now=self.clock.now(), jwks=self.jwks, dpop_nonces=proof.nonces,
            dpop_nonce_required=proof.nonce_required, legacy=legacy is not None)
        if result is None or isinstance(result, OAuthError):
            return result
        facts.attested = result
        if result.replay is not None:
            facts.replays.append(result.replay)
        facts.context.extend(result.context())
        return None


@dataclass(frozen=True, slots=True)
class RequireClientIdentification:
    """Every token request names its client, whoever authenticates it (RFC 6749 §3.2.1:
    confidential clients authenticate, public clients send client_id): Basic, client_id,
    a client assertion, a certificate or an attestation. Without one the request is refused
    here, registry or not, rather than left to an upstream that may issue a token to nobody.
    The grants whose own credential may stand alone are the exceptions (`_MAY_BE_ANONYMOUS`)."""

    attestation_verified: bool  # False: an attestation header is the upstream's to verify
    realm: str

    @classmethod
    def of(cls, env: StepContext) -> RequireClientIdentification:
        return cls(env.policy.attestation is not None, env.policy.client_auth.issuer)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        client = facts.client
        attested = facts.attested is not None or (
            not self.attestation_verified and bool(request.attestation))  # for the upstream
        if client.client_id is not None or facts.certificate is not None or attested:
            return None
        if request.parameters.get("grant_type") in _MAY_BE_ANONYMOUS:
            return None
        return unidentified_client(client, self.realm)


_MAY_BE_ANONYMOUS = frozenset({
    JWT_BEARER,  # RFC 7523 §3.1: client authentication is optional for the assertion grant
    # OpenID4VCI 1.0 §6.1: for the pre-authorized code, client authentication (and so
    # client_id) is optional; wallets may be anonymous.
    PRE_AUTHORIZED_CODE,
})


@dataclass(frozen=True, slots=True)
class AuthenticateClient:
    """With a client registry, the sidecar authenticates the client itself (RFC 6749 §2.3,
    RFC 7523 §3, RFC 8705 §2); the assertion's jti is left for the last step. A verified
    attestation authenticates the client by itself, unless the registry marks it as an
    additional signal for that client."""

    registry: Registry | None
    client_auth: ClientAuthPolicy
    clock: Clock
    jwks: JwksSource
    secrets: SecretVerifier

    @classmethod
    def of(cls, env: StepContext) -> AuthenticateClient | None:
        policy = env.policy
        if policy.registry is None and policy.attestation is None:
            return None  # the upstream authenticates its clients
        return cls(policy.registry, policy.client_auth, env.clock, env.jwks, env.secrets)

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        if facts.attested is not None:
            attested = self._authenticate_attested(facts, facts.attested)
            if attested is not None:
                return attested if isinstance(attested, OAuthError) else None
        if self.registry is None:
            return None
        result = await authenticate(
            facts.client, facts.certificate, self.registry, policy=self.client_auth,
            now=self.clock.now(), jwks=self.jwks, secrets=self.secrets)
        if isinstance(result, OAuthError):
            return result
        facts.auth = result
        if result.replay is not None:
            facts.replays.append(result.replay)
        facts.context.extend(context_headers(result))
        return None

    def _authenticate_attested(self, facts: Facts,
                               attested: AttestedClient) -> OAuthError | bool | None:
        """True when the attestation authenticated the client; None to go on with the other
        method (attestation as an additional signal)."""
        auth = authenticate_with_attestation(attested, facts.client, self.registry,
                                             unknown=self.client_auth.unknown)
        if auth is None or isinstance(auth, OAuthError):
            return auth
        facts.auth = auth
        facts.client = replace(facts.client, client_id=attested.client_id, method=auth.method)
        facts.context.extend(context_headers(auth))
        return True
