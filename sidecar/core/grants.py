"""The grant's own parameters of a token request: validate them and choose the action.

Shaped like node-oidc-provider's grant handlers: one rule per `grant_type` (the parameters
it requires, its own checks, its action) in `RULES`, then the checks common to every grant
(`resource`, `authorization_details`, `scope`), then the context the upstream gets (Native SSO
device-secret hash). Pure: no I/O, nothing raises; every refusal is an `OAuthError` value.

Descriptions name parameters, never their values: many of them are secrets (codes, tokens,
passwords, assertions, device secrets).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar import errors
from sidecar.core.jose.compact import UNBOUNDED, b64url_encode, lenient_json_object, split_compact
from sidecar.errors import OAuthError
from sidecar.model import Action, FormParams
from sidecar.settings import GrantsSettings

Context = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class GrantResult:
    grant_type: str
    action: Action
    # Extra context headers, names without the configured prefix ("Device-Secret-Hash", ...).
    context: Context = ()


# ---------------------------------------------------------------------------------------
# Constants.

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name
CLIENT_CREDENTIALS = "client_credentials"
PASSWORD = "password"  # noqa: S105 - a grant type name
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CIBA = "urn:openid:params:grant-type:ciba"
PRE_AUTHORIZED_CODE = "urn:ietf:params:oauth:grant-type:pre-authorized_code"

# OpenID Connect Native SSO for Mobile Apps 1.0: the actor_token_type of a device secret.
DEVICE_SECRET_TOKEN_TYPE = "urn:openid:params:token-type:device-secret"  # noqa: S105

REFRESH_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"  # noqa: S105 - a URI

# RFC 8693 §3 token type identifiers, plus the Native SSO device secret.
TOKEN_TYPES = frozenset({
    "urn:ietf:params:oauth:token-type:access_token",
    REFRESH_TOKEN_TYPE,
    "urn:ietf:params:oauth:token-type:id_token",
    "urn:ietf:params:oauth:token-type:saml1",
    "urn:ietf:params:oauth:token-type:saml2",
    "urn:ietf:params:oauth:token-type:jwt",
    DEVICE_SECRET_TOKEN_TYPE,
})

# Nesting bound for authorization_details (arrays and objects). RFC 9396 types seen in the
# wild (openid_credential, payment_initiation, ...) stay well under it.
MAX_AUTHORIZATION_DETAILS_DEPTH = 32

DEVICE_SECRET_HASH = "Device-Secret-Hash"  # noqa: S105 - a header name

# RFC 3986 §4.3 absolute-URI = scheme ":" hier-part [ "?" query ], ASCII only, escapes
# well formed. The fragment ('#') is tested on its own first, to say which rule failed.
_ABSOLUTE_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
)
# RFC 7636 §4.1: code-verifier = 43*128unreserved.
_CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 6749 §3.3: scope = scope-token *( SP scope-token ),
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity are not JSON (RFC 8259 §6)


# One decoder for every call: json.loads(**kw) would build a new one each time.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


# ---------------------------------------------------------------------------------------
# Parameter access. Values come from FormParams.get_all, never from indexing: a FormParams
# built by hand (decision API, tests) may hold any number of values for a name.


def _single(params: FormParams, name: str) -> str | OAuthError | None:
    """The one value of a parameter, None when absent, an error when sent twice."""
    values = params.get_all(name)
    if len(values) > 1:
        # RFC 6749 §3.2: parameters MUST NOT be included more than once.
        return errors.invalid_request(
            "grant.duplicate_parameter", f"The {name} parameter is included more than once."
        )
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    return values[0] if values and values[0] else None


def _missing(name: str) -> OAuthError:
    return errors.invalid_request(
        "grant.missing_parameter", f"The {name} parameter is required for this grant type."
    )


def _uri_problem(value: str) -> str | None:
    """'fragment', 'not_absolute', or None for an absolute URI without fragment."""
    if "#" in value:
        return "fragment"
    return None if _ABSOLUTE_URI.fullmatch(value) else "not_absolute"


# ---------------------------------------------------------------------------------------
# Checks of one grant. Each takes the parameters and settings, returns an error or None.

GrantCheck = Callable[[FormParams, GrantsSettings], OAuthError | None]


def _check_redirect_uri(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 6749 §4.1.3 / §3.1.2: the redirection endpoint URI MUST be an absolute URI and
    # MUST NOT include a fragment component.
    value = _single(params, "redirect_uri")
    if value is None or isinstance(value, OAuthError):
        return value
    problem = _uri_problem(value)
    if problem == "fragment":
        return errors.invalid_request(
            "redirect_uri.fragment", "The redirect_uri must not include a fragment."
        )
    if problem:
        return errors.invalid_request(
            "redirect_uri.not_absolute", "The redirect_uri must be an absolute URI."
        )
    return None


def _check_code_verifier(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
    # invalid_request, not invalid_grant: a verifier of the wrong syntax is a malformed
    # request (RFC 6749 §5.2) that anyone can see. RFC 7636 §4.6's invalid_grant is for a
    # verifier that does not match the code_challenge, a verification only the
    # authorization server, which holds the challenge, can make.
    value = _single(params, "code_verifier")
    if value is None or isinstance(value, OAuthError):
        return value
    if not _CODE_VERIFIER.fullmatch(value):
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
    value = _single(params, name)
    if value is None or isinstance(value, OAuthError):
        return value
    if value in TOKEN_TYPES or value in settings.extra_token_types:
        return None
    return errors.invalid_request(
        "token_exchange.unsupported_token_type",
        f"The {name} is not a supported token type identifier (RFC 8693 §3).",
    )


def _check_subject_token_type(params: FormParams, settings: GrantsSettings
                              ) -> OAuthError | None:
    # RFC 8693 §2.1: subject_token_type is REQUIRED (presence checked by the rule table).
    return _check_token_type(params, settings, "subject_token_type")


def _check_actor(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 8693 §2.1: actor_token_type is REQUIRED when actor_token is present and MUST NOT
    # be included otherwise.
    token = _single(params, "actor_token")
    kind = _single(params, "actor_token_type")
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


def _check_requested_token_type(params: FormParams, settings: GrantsSettings
                                ) -> OAuthError | None:
    # RFC 8693 §2.1: requested_token_type is OPTIONAL, a §3 identifier.
    return _check_token_type(params, settings, "requested_token_type")


def _malformed_assertion(why: str) -> OAuthError:
    # RFC 7523 §3.1: a JWT that is not valid is invalid_grant.
    return errors.invalid_grant(
        "assertion.malformed", "The assertion is not a well-formed JWT (RFC 7523 §2.1).",
        detail=why,
    )


def _check_assertion(params: FormParams, settings: GrantsSettings) -> OAuthError | None:
    # RFC 7523 §2.1: the assertion parameter MUST contain a single JWT. Only its shape is
    # checked here; the signature and claims are checked where issuers are configured.
    value = _single(params, "assertion")
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


# ---------------------------------------------------------------------------------------
# The rule table.


@dataclass(frozen=True, slots=True)
class GrantRule:
    action: Action
    required: tuple[str, ...] = ()  # present exactly once, with a value
    optional: tuple[str, ...] = ()  # at most once
    checks: tuple[GrantCheck, ...] = ()


RULES: Mapping[str, GrantRule] = {
    # RFC 6749 §4.1.3
    AUTHORIZATION_CODE: GrantRule(
        Action.OK, required=("code",), optional=("redirect_uri", "code_verifier"),
        checks=(_check_redirect_uri, _check_code_verifier),
    ),
    # RFC 6749 §6
    REFRESH_TOKEN: GrantRule(Action.OK, required=("refresh_token",)),
    # RFC 6749 §4.4.2
    CLIENT_CREDENTIALS: GrantRule(Action.OK),
    # RFC 6749 §4.3.2 (deprecated: RFC 9700 §2.4)
    PASSWORD: GrantRule(Action.PASSWORD, required=("username", "password")),
    # RFC 8628 §3.4
    DEVICE_CODE: GrantRule(Action.OK, required=("device_code",)),
    # RFC 8693 §2.1
    TOKEN_EXCHANGE: GrantRule(
        Action.TOKEN_EXCHANGE, required=("subject_token", "subject_token_type"),
        optional=("actor_token", "actor_token_type", "requested_token_type"),
        checks=(_check_subject_token_type, _check_actor, _check_requested_token_type),
    ),
    # RFC 7523 §2.1
    JWT_BEARER: GrantRule(Action.JWT_BEARER, required=("assertion",), checks=(_check_assertion,)),
    # OpenID Connect CIBA Core 1.0 §10.1
    CIBA: GrantRule(Action.OK, required=("auth_req_id",)),
    # OpenID for Verifiable Credential Issuance 1.0 §6.1
    PRE_AUTHORIZED_CODE: GrantRule(
        Action.OK, required=("pre-authorized_code",), optional=("tx_code",)
    ),
}


# ---------------------------------------------------------------------------------------
# Checks common to every grant.


def _check_resource(params: FormParams) -> OAuthError | None:
    # RFC 8707 §2: each resource MUST be an absolute URI (RFC 3986 §4.3), MAY have a query,
    # MUST NOT have a fragment; otherwise invalid_target. It may be sent more than once.
    for value in params.get_all("resource"):
        if not value:
            continue  # RFC 6749 §3.1: sent without a value, treated as omitted
        problem = _uri_problem(value)
        if problem == "fragment":
            return errors.invalid_target(
                "resource.fragment", "A resource must not include a fragment (RFC 8707 §2)."
            )
        if problem:
            return errors.invalid_target(
                "resource.not_absolute", "A resource must be an absolute URI (RFC 8707 §2)."
            )
    return None


def _too_deep(details: list[Any], limit: int) -> bool:
    """Whether arrays/objects nest deeper than `limit`; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(details, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False


def _invalid_details(result: str, description: str) -> OAuthError:
    return errors.invalid_authorization_details(f"authorization_details.{result}", description)


def _check_authorization_details(params: FormParams) -> OAuthError | None:
    # RFC 9396 §2: a JSON array of JSON objects, each with a string "type"; §5: otherwise
    # invalid_authorization_details. The body limit bounds the size; the nesting is bounded
    # here, and the C decoder's RecursionError on absurd nesting is caught.
    value = _single(params, "authorization_details")
    if value is None or isinstance(value, OAuthError):
        return value
    try:
        details = _JSON.decode(value)
    except RecursionError:
        return _invalid_details("too_deep", "The authorization_details nest too deeply.")
    except ValueError:
        return _invalid_details("not_json", "The authorization_details are not valid JSON.")
    if not isinstance(details, list):
        return _invalid_details("not_array", "The authorization_details must be a JSON array.")
    # Cheap bound first: fewer brackets than the limit cannot nest deeper than it.
    if (value.count("[") + value.count("{") > MAX_AUTHORIZATION_DETAILS_DEPTH
            and _too_deep(details, MAX_AUTHORIZATION_DETAILS_DEPTH)):
        return _invalid_details("too_deep", "The authorization_details nest too deeply.")
    for detail in details:
        if not isinstance(detail, dict):
            return _invalid_details(
                "not_object", "Each authorization_details element must be a JSON object."
            )
        kind = detail.get("type")
        if not isinstance(kind, str) or not kind:
            return _invalid_details(
                "missing_type",
                "Each authorization_details element must have a string type (RFC 9396 §2).",
            )
    return None


def _check_scope(params: FormParams) -> OAuthError | None:
    # RFC 6749 §3.3: space-delimited scope tokens of %x21 / %x23-5B / %x5D-7E (no '"',
    # no '\\', no controls), one space between tokens, none leading or trailing.
    value = _single(params, "scope")
    if value is None or isinstance(value, OAuthError):
        return value
    if _SCOPE.fullmatch(value):
        return None
    return errors.invalid_scope(
        "scope.syntax", "The scope parameter is not a space-delimited list of scope tokens "
        "(RFC 6749 §3.3).",
    )


COMMON_CHECKS: tuple[Callable[[FormParams], OAuthError | None], ...] = (
    _check_resource,
    _check_authorization_details,
    _check_scope,
)


# ---------------------------------------------------------------------------------------
# Context.


def device_secret_hash(device_secret: str) -> str:
    """base64url without padding of SHA-256 of the device secret's UTF-8 bytes."""
    # surrogatepass: a str built by hand may hold a lone surrogate; hashing must not raise.
    digest = hashlib.sha256(device_secret.encode("utf-8", "surrogatepass")).digest()
    return b64url_encode(digest)


def _native_sso_context(params: FormParams, grant_type: str) -> Context | OAuthError:
    # OpenID Connect Native SSO for Mobile Apps 1.0: in the token exchange profile the
    # device secret is the actor_token, typed urn:openid:params:token-type:device-secret.
    # Earlier drafts sent it as a device_secret parameter (with the authorization_code and
    # refresh_token grants too), so that parameter is honoured on any grant. The upstream
    # gets the hash, which is what the ID token's ds_hash binds to, never the secret.
    secret = _single(params, "device_secret")
    if isinstance(secret, OAuthError):
        return secret
    if grant_type == TOKEN_EXCHANGE and params.get_all("actor_token_type") == (
            DEVICE_SECRET_TOKEN_TYPE,):
        actor = _single(params, "actor_token")  # checked by the rule, present and single
        if isinstance(actor, str):
            if secret is not None and secret != actor:
                return errors.invalid_request(
                    "device_secret.conflict",
                    "The device_secret and the device-secret actor_token differ.",
                )
            secret = actor
    if secret is None:
        return ()
    return ((DEVICE_SECRET_HASH, device_secret_hash(secret)),)


# ---------------------------------------------------------------------------------------
# The entry point.


def validate_grant(params: FormParams, settings: GrantsSettings) -> GrantResult | OAuthError:
    grant_type = _single(params, "grant_type")
    if isinstance(grant_type, OAuthError):
        return grant_type
    if grant_type is None:
        # RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6: grant_type is REQUIRED.
        return errors.invalid_request(
            "grant.missing_grant_type", "The grant_type parameter is required."
        )
    rule = RULES.get(grant_type)
    if rule is None:
        # RFC 6749 §5.2: a grant type the authorization server does not support.
        return errors.unsupported_grant_type(
            "grant.unsupported", "The grant_type is not supported."
        )
    if grant_type not in settings.allowed:
        return errors.unsupported_grant_type(
            "grant.not_allowed", "The grant_type is not enabled on this endpoint."
        )
    if grant_type == PASSWORD and settings.password == "reject":  # noqa: S105 - a mode
        # RFC 9700 §2.4: the resource owner password credentials grant MUST NOT be used.
        return errors.unsupported_grant_type(
            "grant.password_rejected",
            "The password grant is deprecated (RFC 9700 §2.4) and not accepted.",
        )
    problem = _check_rule(params, settings, rule)
    if problem is None:
        for common in COMMON_CHECKS:
            problem = common(params)
            if problem is not None:
                break
    if problem is not None:
        return problem
    context = _native_sso_context(params, grant_type)
    if isinstance(context, OAuthError):
        return context
    return GrantResult(grant_type, rule.action, context)


def _check_rule(params: FormParams, settings: GrantsSettings, rule: GrantRule
                ) -> OAuthError | None:
    for name in rule.required:
        value = _single(params, name)
        if value is None:
            return _missing(name)
        if isinstance(value, OAuthError):
            return value
    for name in rule.optional:
        value = _single(params, name)
        if isinstance(value, OAuthError):
            return value
    for check in rule.checks:
        problem = check(params, settings)
        if problem is not None:
            return problem
    return None
