"""Checks common to every grant: `resource` (RFC 8707), `authorization_details` (RFC 9396),
`scope` (RFC 6749 §3.3)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidecar import errors
from sidecar.core.grants.names import MAX_AUTHORIZATION_DETAILS_DEPTH
from sidecar.core.grants.params import JSON_DECODER, SCOPE, single_value, uri_problem
from sidecar.errors import OAuthError
from sidecar.model import FormParams


def _check_resource(params: FormParams) -> OAuthError | None:
    # RFC 8707 §2: each resource MUST be an absolute URI (RFC 3986 §4.3), MAY have a query,
    # MUST NOT have a fragment; otherwise invalid_target. It may be sent more than once.
    for value in params.get_all("resource"):
        if not value:
            continue  # RFC 6749 §3.1: sent without a value, treated as omitted
        problem = uri_problem(value)
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
    value = single_value(params, "authorization_details")
    if value is None or isinstance(value, OAuthError):
        return value
    try:
        details = JSON_DECODER.decode(value)
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
    value = single_value(params, "scope")
    if value is None or isinstance(value, OAuthError):
        return value
    if SCOPE.fullmatch(value):
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
