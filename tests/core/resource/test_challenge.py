"""sidecar.core.resource.challenge: WWW-Authenticate (RFC 6750 §3, RFC 9449 §7.1)."""

from __future__ import annotations

from sidecar import errors
from sidecar.core.resource.challenge import bearer_challenge, challenged, dpop_challenge

ALGS = "ES256 PS256"
TOKEN = errors.invalid_token("x", "Bad token.")


def _challenges(error: errors.OAuthError) -> list[str]:
    return [value for name, value in error.headers if name == "WWW-Authenticate"]


def test_a_dpop_challenge_names_the_error_and_the_algorithms() -> None:
    assert dpop_challenge(ALGS, TOKEN) == \
        'DPoP error="invalid_token", error_description="Bad token.", algs="ES256 PS256"'
    assert dpop_challenge(ALGS) == 'DPoP algs="ES256 PS256"'


def test_a_bearer_challenge_and_its_scope() -> None:
    scope = errors.insufficient_scope("s", "Needs more.")
    assert bearer_challenge(scope, "read write") == \
        'Bearer error="insufficient_scope", error_description="Needs more.", scope="read write"'
    assert bearer_challenge() == "Bearer"


def test_descriptions_lose_characters_a_quoted_string_cannot_hold() -> None:
    odd = errors.invalid_token("x", 'say "hi" \\ \u00e9\r\n')
    assert dpop_challenge(ALGS, odd).startswith('DPoP error="invalid_token", '
                                                'error_description="say hi  ", ')


def test_challenges_follow_the_scheme_used() -> None:
    assert _challenges(challenged(TOKEN, "DPoP", algs=ALGS, bearer_allowed=True)) == [
        dpop_challenge(ALGS, TOKEN)]
    # Bearer use: the Bearer error, and the DPoP scheme offered beside it.
    assert _challenges(challenged(TOKEN, "Bearer", algs=ALGS, bearer_allowed=True)) == [
        bearer_challenge(TOKEN), dpop_challenge(ALGS)]


def test_without_credentials_no_error_code() -> None:
    assert _challenges(challenged(TOKEN, None, algs=ALGS, bearer_allowed=True,
                                  credentials_sent=False)) == [dpop_challenge(ALGS), "Bearer"]
    assert _challenges(challenged(TOKEN, None, algs=ALGS, bearer_allowed=False,
                                  credentials_sent=False)) == [dpop_challenge(ALGS)]


def test_a_server_failure_has_no_challenge() -> None:
    failure = errors.temporarily_unavailable("store.unavailable", "Later.")
    assert challenged(failure, "DPoP", algs=ALGS, bearer_allowed=True) == failure
