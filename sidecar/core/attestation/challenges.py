"""Attestation challenges (§6): checking the one in a PoP (§7.2 rule 5), issuing fresh ones on
responses (§6.2) and at the challenge endpoint (§6.3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar import errors
from sidecar.core.attestation.config import CHALLENGE_HEADER, AttestationPolicy
from sidecar.core.dpop.policy import NONCE_HEADER
from sidecar.core.nonces import WindowedHmac
from sidecar.errors import OAuthError


def check_challenge(value: object, present: bool, policy: AttestationPolicy,
                     now: float) -> OAuthError | None:
    challenges = policy.challenges
    if challenges is None:
        return None  # a challenge we never issue is a claim we do not understand (§5.1 rule 1)
    if not present:
        if not policy.challenge_required:
            return None
        return _use_challenge("challenge_missing", "A server-provided challenge is required "
                              "in the attestation PoP.", challenges, now)
    if not challenges.verify(value, now):
        return _use_challenge("challenge_invalid", "The attestation PoP challenge is invalid "
                              "or has expired.", challenges, now)
    return None


def _use_challenge(reason: str, description: str, challenges: WindowedHmac,
                   now: float) -> OAuthError:
    # §6.1, §7.4: the error MUST carry a fresh challenge.
    return errors.use_attestation_challenge(f"attestation.{reason}", description) \
        .with_headers((CHALLENGE_HEADER, challenges.issue(now)))


def issue_challenge(policy: AttestationPolicy, now: float) -> str | None:
    return policy.challenges.issue(now) if policy.challenges is not None else None


def response_headers(policy: AttestationPolicy | None, now: float) -> tuple[tuple[str, str], ...]:
    """§6.2: a fresh challenge on token-endpoint responses, when challenges are on."""
    challenge = issue_challenge(policy, now) if policy is not None else None
    return ((CHALLENGE_HEADER, challenge),) if challenge is not None else ()


@dataclass(frozen=True, slots=True)
class ChallengeResponse:
    status: int
    body: dict[str, str]
    headers: tuple[tuple[str, str], ...]


_NO_STORE: Final = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def challenge_endpoint(policy: AttestationPolicy, now: float, *, method: str,
                       dpop_nonces: WindowedHmac | None = None) -> ChallengeResponse:
    """§6.3: `POST` answers 200 `{"attestation_challenge": ...}`, uncacheable, with a fresh
    `DPoP-Nonce` when DPoP nonces are on (-11); other methods 405. Only mounted when
    challenges are on (`policy.challenges`)."""
    if method != "POST":
        error = errors.method_not_allowed("attestation.challenge_method",
                                          "The challenge endpoint accepts POST only.")
        return ChallengeResponse(405, error.body, (("Allow", "POST"), *_NO_STORE))
    challenge = issue_challenge(policy, now)
    if challenge is None:
        error = errors.invalid_request("attestation.challenges_off",
                                       "The server does not issue attestation challenges.")
        return ChallengeResponse(404, error.body, _NO_STORE)
    headers = _NO_STORE + (((NONCE_HEADER, dpop_nonces.issue(now)),) if dpop_nonces else ())
    return ChallengeResponse(200, {"attestation_challenge": challenge}, headers)
