"""Refresh tokens bound to what the client proved (README "The store"; RFC 9449 §5, RFC 8705
§4: `sha256(refresh_token)` → `jkt:<thumbprint>`, `x5t:<x5t#S256>` or `att:<instance jkt>`):
checking a refresh against its binding, and choosing the binding for the token the upstream
is about to issue."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar import errors
from sidecar.core.attestation.config import ATTESTATION_METHODS
from sidecar.core.attestation.config import REFRESH_BINDING_KIND as ATTESTATION_BINDING
from sidecar.core.attestation.refresh_binding import (
    check_refresh_binding as check_attestation_binding,
)
from sidecar.core.grants.names import REFRESH_TOKEN, TOKEN_EXCHANGE
from sidecar.core.steps import Facts, StepContext, StoreAccess
from sidecar.core.store_failures import store_call
from sidecar.errors import OAuthError
from sidecar.model import TokenRequest

REFRESH_BINDING = "refresh"  # store kind: sha256(refresh_token) -> "<kind>:<value>"


@dataclass(frozen=True, slots=True)
class CheckRefreshBinding:
    """RFC 9449 §5, RFC 8705 §4: a bound refresh token is only spent by the key, certificate
    or instance it is bound to, whether it is refreshed or exchanged (below)."""

    store: StoreAccess

    @classmethod
    def of(cls, env: StepContext) -> CheckRefreshBinding:
        return cls(StoreAccess.of(env))

    async def __call__(self, request: TokenRequest, facts: Facts) -> OAuthError | None:
        for refresh_token in _presented_refresh_tokens(request, facts):
            error = await _check_one(refresh_token, facts, self.store)
            if error is not None:
                return error
        return None


def _presented_refresh_tokens(request: TokenRequest, facts: Facts) -> tuple[str, ...]:
    """The refresh tokens a request may spend: the refresh grant's, and the subject and actor
    tokens of a token exchange (RFC 8693 §2.1). Without the second, a stolen bound refresh
    token could be exchanged instead of refreshed. Every exchanged token is looked up, whatever
    `*_token_type` claims: a client could label a refresh token as something else."""
    params, grant = request.parameters, facts.grant
    if grant is None:
        return ()
    names: tuple[str, ...]
    if grant.grant_type == REFRESH_TOKEN:
        names = ("refresh_token",)
    elif grant.grant_type == TOKEN_EXCHANGE:
        names = ("subject_token", "actor_token")
    else:
        return ()
    return tuple(token for name in names if (token := params.get(name)))


async def _check_one(refresh_token: str, facts: Facts,
                     access: StoreAccess) -> OAuthError | None:
    outcome = await store_call(access.store.get_binding(REFRESH_BINDING, refresh_token),
                               access.failures)
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
        if facts.certificate is None:
            return _CERTIFICATE_REQUIRED
        if facts.certificate.x5t_s256 != value:
            return _OTHER_CERTIFICATE
    else:
        # RFC 9449 §5: a public client's refresh token bound to its DPoP key.
        if facts.dpop is None:
            return _PROOF_REQUIRED
        if facts.dpop.jkt != value:
            return _OTHER_KEY
    facts.refresh_bound_to = bound
    return None


# A client that sent no proof (or no certificate) is told what is missing, not that it used
# another key.
_PROOF_REQUIRED = errors.invalid_grant(
    "binding.dpop_proof_required",
    "The refresh token is bound to a DPoP key: a DPoP proof is required.")
_OTHER_KEY = errors.invalid_grant("binding.dpop_key_mismatch",
                                  "The refresh token is bound to another DPoP key.")
_CERTIFICATE_REQUIRED = errors.invalid_grant(
    "binding.certificate_required",
    "The refresh token is bound to a client certificate: present that certificate.")
_OTHER_CERTIFICATE = errors.invalid_grant("binding.certificate_mismatch",
                                          "The refresh token is bound to another certificate.")


def refresh_binding(facts: Facts) -> str | None:
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
    return facts.client.method == "none"
