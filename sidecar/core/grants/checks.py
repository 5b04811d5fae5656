"""Checks of one grant: each takes the parameters and settings, returns an error or None."""

from __future__ import annotations

from collections.abc import Callable

from sidecar import errors
from sidecar.core.grants.names import TOKEN_TYPES
from sidecar.core.grants.params import CODE_VERIFIER, single_value, uri_problem
from sidecar.core.jose.compact import UNBOUNDED, lenient_json_object, split_compact
from sidecar.errors import OAuthError
from sidecar.model import FormParams
from sidecar.settings import GrantsSettings

GrantCheck = Callable[[FormParams, GrantsSettings], OAuthError | None]


def check_redirect_uri(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 6749 §4.1.3 / §3.1.2: the redirection endpoint URI MUST be an absolute URI and
    # MUST NOT include a fragment component.
    value = single_value(params, "redirect_uri")
    if value is None or isinstance(value, OAuthError):
        return value
    problem = uri_problem(value)
    if problem == "fragment":
        return errors.invalid_request(
            "redirect_uri.fragment", "The redirect_uri must not include a fragment."
        )
    if problem:
        return errors.invalid_request(
            "redirect_uri.not_absolute", "The redirect_uri must be an absolute URI."
        )
    return None


def check_code_verifier(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
    # invalid_request, not invalid_grant: a verifier of the wrong syntax is a malformed
    # request (RFC 6749 §5.2) that anyone can see. RFC 7636 §4.6's invalid_grant is for a
    # verifier that does not match the code_challenge, a verification only the
    # authorization server, which holds the challenge, can make.
    value = single_value(params, "code_verifier")
    if value is None or isinstance(value, OAuthError):
        return value
    if not CODE_VERIFIER.fullmatch(value):
        return errors.invalid_request(
            "pkce.code_verifier_syntax",
            "The code_verifier must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ "
            "(RFC 7636 §4.1).",
        )
    return None


def _check_token_type(params: FormParams, settings: GrantsSettings, name: str
                      ) -> OAuthError | None:
    # RFC 8693 §3 lists the token type identifiers; §2.2.2: a request the server cannot
    # accept gets invalid_request.
    value = single_value(params, name)
    if value is None or isinstance(value, OAuthError):
        return value
    if value in TOKEN_TYPES or value in settings.extra_token_types:
        return None
    return errors.invalid_request(
        "token_exchange.unsupported_token_type",
        f"The {name} is not a supported token type identifier (RFC 8693 §3).",
    )


def check_subject_token_type(params: FormParams, settings: GrantsSettings
                              ) -> OAuthError | None:
    # RFC 8693 §2.1: subject_token_type is REQUIRED (presence checked by the rule table).
    return _check_token_type(params, settings, "subject_token_type")


def check_actor(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present and MUST NOT
    # be included otherwise.
    token = single_value(params, "actor_token")
    kind = single_value(params, "actor_token_type")
    if isinstance(token, OAuthError):
        return token
    if isinstance(kind, OAuthError):
        return kind
    if token is not None and kind is None:
        return errors.invalid_request(
            "token_exchange.actor_token_type_missing",
            "The actor_token_type parameter is required with actor_token (RFC 8693 §2.1).",
        )
    if token is None and kind is not None:
        return errors.invalid_request(
            "token_exchange.actor_token_missing",
            "The actor_token_type parameter must not be sent without actor_token "
            "(RFC 8693 §2.1).",
        )
    return _check_token_type(params, settings, "actor_token_type")


def check_requested_token_type(params: FormParams, settings: GrantsSettings
                                ) -> OAuthError | None:
    # RFC 8693 §2.1: requested_token_type is OPTIONAL, a §3 identifier.
    return _check_token_type(params, settings, "requested_token_type")


def _malformed_assertion(why: str) -> OAuthError:
    # RFC 7523 §3.1: a JWT that is not valid is invalid_grant.
    return errors.invalid_grant(
        "assertion.malformed", "The assertion is not a well-formed JWT (RFC 7523 §2.1).",
        detail=why,
    )


def check_assertion(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 7523 §2.1: the assertion parameter MUST contain a single JWT. Only its shape is
    # checked here; the signature and claims are checked where issuers are configured.
    value = single_value(params, "assertion")
    if value is None or isinstance(value, OAuthError):
        return value  # presence is checked by the rule table
    # RFC 7515 §7.1: three base64url segments, the signature possibly empty (named below).
    segments = split_compact(value, allow_unsigned=True, max_length=UNBOUNDED)
    if segments is None:
        return _malformed_assertion("not three base64url segments")
    header_segment, payload_segment, signature = segments
    # Read as the upstream's library would (padding bits ignored, the last duplicate wins),
    # but UTF-8 and no NaN: it only has to be a JWT, the upstream verifies it.
    header = lenient_json_object(header_segment)
    if header is None or lenient_json_object(payload_segment) is None:
        return _malformed_assertion("a segment is not a base64url-encoded JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        return _malformed_assertion("the header has no string alg")
    # RFC 7523 §3 item 9: the JWT MUST be digitally signed or MACed. "none" is compared
    # without case: some libraries have accepted "None" or "NONE" as unsigned.
    if alg.lower() == "none" or not signature:
        return errors.invalid_grant(
            "assertion.unsigned", "The assertion must be signed (RFC 7523 §3)."
        )
    return None
