"""The resource-side check (README "The resource side"): one API call in, allow with the
context for the API or deny with the status, `WWW-Authenticate` and `DPoP-Nonce`.

Pure: the doors (sidecar/http/resource*.py) read the request into a `ResourceRequest`, and
do the I/O between the two halves of the check:

1. `present(request, policy, now)`: the credentials (RFC 6750 §2.1, RFC 9449 §7.1), the
   client certificate from the trusted proxy's header (RFC 8705 §3), and for the DPoP
   scheme the proof, validated as at the token endpoint (`sidecar.core.dpop`) with the
   resource's `htu` (public origin + path, §4.3 step 9), `ath` (§4.3 step 12) and nonce
   (§9) -> `Presented` or `Denied`;
2. the shell asks the token sources, in order, for the token's facts (the first that knows
   the token wins; a source that cannot answer is a 503, fail closed);
3. `decide(presented, facts, policy, now)`: the binding and the scope -> `Allowed` (with the
   proof's `jti` still to burn: `Allowed.replay`) or `Denied`;
4. the shell burns the `jti` (`SET NX PX`, store kind `RESOURCE_DPOP_JTI`) last, so that a
   request refused for another reason does not use up its proof; a replay is `replayed()`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Final

from sidecar import errors
from sidecar.core.dpop.results import DpopProof
from sidecar.core.dpop.validate import validate_proof
from sidecar.core.htu import normalize_htu
from sidecar.core.mtls.certificate import ClientCertificate
from sidecar.core.mtls.parse import parse_client_certificate
from sidecar.core.resource.binding import check_binding, check_scope
from sidecar.core.resource.challenge import challenged
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.resource.request import Credentials, ResourceRequest, Scheme, read_credentials
from sidecar.core.resource.token_facts import TokenFacts
from sidecar.errors import OAuthError
from sidecar.model import ReplayCheck

__all__ = ["RESOURCE_DPOP_JTI", "Allowed", "Denied", "Presented", "decide", "invalid_token",
           "present", "refuse", "replayed", "unavailable"]

RESOURCE_DPOP_JTI: Final = "resource-dpop"  # store kind: the jti of proofs at the APIs
_NO_CREDENTIALS: Final = errors.invalid_token("resource.no_credentials",
                                              "The request carries no access token.")
_BAD_PATH: Final = errors.invalid_request("resource.bad_path",
                                          "The request path cannot be a DPoP htu.")
_REPLAYED: Final = dataclasses.replace(errors.invalid_dpop_proof(
    "resource.replayed", "The DPoP proof has been used before."), status=401)  # §7.1
_NONCE_DESCRIPTION: Final = "Resource server requires nonce in DPoP proof."  # RFC 9449 §9
# A context header value: visible ASCII and spaces only (a JWT's `sub` could hold anything).
_HEADER_SAFE: Final = re.compile(r"[\x20-\x7e]{1,1024}")


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Presented:
    """What a request presented, checked as far as it can be without the token's facts."""

    credentials: Final[Credentials]
    proof: Final[DpopProof | None]  # set for the DPoP scheme
    certificate: Final[ClientCertificate | None]

    @property
    def token(self) -> str:
        return self.credentials.token


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Allowed:
    credentials: Final[Credentials]
    facts: Final[TokenFacts | None]  # None: an unbound Bearer token no source knew, let through
    jkt: Final[str | None]  # the proof's key, equal to the token's cnf.jkt
    cert_s256: Final[str | None]  # the presented certificate, equal to the token's cnf x5t#S256
    replay: Final[ReplayCheck | None]  # the proof's jti, to burn last
    result_code: Final[str]

    @property
    def token(self) -> str:
        return self.credentials.token

    def context(self) -> tuple[tuple[str, str], ...]:
        """The context headers for the API, names without the prefix (README "Context
        headers sent upstream"); only what is known, only header-safe values."""
        facts = self.facts
        values = [("Client-Id", facts.client_id if facts else ""), ("DPoP-JKT", self.jkt or ""),
                  ("Client-Cert-S256", self.cert_s256 or ""),
                  ("Subject", facts.subject if facts else ""),
                  ("Scope", facts.scope if facts else "")]
        return tuple((name, value) for name, value in values if _HEADER_SAFE.fullmatch(value))

    def __repr__(self) -> str:
        return f"Allowed(result_code={self.result_code!r}, jkt={self.jkt!r})"


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Denied:
    """`error.headers` holds the `WWW-Authenticate` challenges and any `DPoP-Nonce`."""

    error: Final[OAuthError]
    scheme: Final[Scheme | None] = None

    @property
    def status(self) -> int:
        return self.error.status

    @property
    def result_code(self) -> str:
        return self.error.result_code


def _deny(error: OAuthError, scheme: Scheme | None, policy: ResourcePolicy,
          scope: str = "") -> Denied:
    return Denied(challenged(error, scheme, algs=policy.algs,
                             bearer_allowed=policy.bearer_allowed, scope=scope,
                             credentials_sent=error is not _NO_CREDENTIALS), scheme)


def present(request: ResourceRequest, policy: ResourcePolicy, now: float) -> Presented | Denied:
    credentials = read_credentials(request.authorization)
    if credentials is None:
        return _deny(_NO_CREDENTIALS, None, policy)
    if isinstance(credentials, OAuthError):
        return _deny(credentials, None, policy)
    certificate = parse_client_certificate(request.client_cert_header, policy.cert_format,
                                           request.client_cert_chain_header,
                                           cache=policy.certificates)
    if isinstance(certificate, OAuthError):
        return _deny(certificate, credentials.scheme, policy)
    if credentials.scheme == "Bearer":
        return Presented(credentials, None, certificate)
    proof = _proof(request, credentials, policy, now)
    if isinstance(proof, OAuthError):
        return _deny(proof, "DPoP", policy)
    return Presented(credentials, proof, certificate)


def _proof(request: ResourceRequest, credentials: Credentials, policy: ResourcePolicy,
           now: float) -> DpopProof | OAuthError:
    target = normalize_htu(policy.origin + request.path)
    if target is None:
        return _BAD_PATH.with_detail(f"path length {len(request.path)}")
    proof = validate_proof(request.dpop, method=request.method, policy=policy.dpop, now=now,
                           nonces=policy.nonces, nonce_required=policy.nonce_required,
                           htu_targets=frozenset((target,)), access_token=credentials.token)
    if isinstance(proof, OAuthError) and proof.status == 400:
        # RFC 9449 §7.1, §9: a protected resource answers these with 401.
        description = _NONCE_DESCRIPTION if proof.code == "use_dpop_nonce" \
            else proof.description
        return dataclasses.replace(proof, status=401, description=description)
    return proof


def decide(presented: Presented, facts: TokenFacts | None, policy: ResourcePolicy,
           now: float) -> Allowed | Denied:
    scheme = presented.credentials.scheme
    refused = check_binding(facts, scheme=scheme, proof=presented.proof,
                            certificate=presented.certificate,
                            bearer_allowed=policy.bearer_allowed, now=now)
    if refused is not None:
        return _deny(refused, scheme, policy)
    refused = check_scope(facts, policy.required_scopes)
    if refused is not None:
        return _deny(refused, scheme, policy, scope=" ".join(policy.required_scopes))
    proof = presented.proof
    bound = facts is not None and facts.is_bound
    return Allowed(
        credentials=presented.credentials, facts=facts,
        jkt=proof.jkt if proof is not None else None,
        cert_s256=presented.certificate.x5t_s256
        if facts is not None and facts.x5t_s256 and presented.certificate else None,
        replay=ReplayCheck(RESOURCE_DPOP_JTI, proof.replay_key, proof.replay_ttl_seconds,
                           _REPLAYED) if proof is not None else None,
        result_code="resource.allowed" if bound else "resource.allowed_unbound")


def refuse(error: OAuthError, policy: ResourcePolicy) -> Denied:
    """A refusal a door makes before the check (the proxy's headers do not say which
    request it asks about, two certificate headers), with its challenges."""
    return _deny(error, None, policy)


def replayed(allowed: Allowed, policy: ResourcePolicy) -> Denied:
    """The proof's jti was seen before (RFC 9449 §11.1)."""
    return _deny(_REPLAYED, allowed.credentials.scheme, policy)


def invalid_token(presented: Presented, policy: ResourcePolicy, result_code: str,
                  description: str, detail: str) -> Denied:
    """A token source knew the token to be invalid (a JWT access token that fails, RFC 9068
    §4): `invalid_token` (RFC 6750 §3.1), challenged for the scheme it was presented with."""
    return _deny(errors.invalid_token(result_code, description, detail),
                 presented.credentials.scheme, policy)


def unavailable(policy: ResourcePolicy, result_code: str, detail: str) -> Denied:
    """A store or token source that cannot answer: 503, fail closed (never "not bound")."""
    return Denied(errors.temporarily_unavailable(
        result_code, "The token check is unavailable; try again shortly.", detail,
    ).with_headers(("Retry-After", str(policy.retry_after_seconds))))
