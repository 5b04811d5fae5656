"""Reading a grant's parameters: one value each, and the syntax rules the checks share
(RFC 3986 absolute URIs, RFC 7636 code verifiers, RFC 6749 §3.3 scopes, strict JSON).
Values come from FormParams.get_all, never from indexing: a FormParams built by hand
(decision API, tests) may hold any number of values for a name."""

from __future__ import annotations

import json
import re
from typing import Any

from sidecar import errors
from sidecar.errors import OAuthError
from sidecar.model import FormParams

# RFC 3986 §4.3 absolute-URI = scheme ":" hier-part [ "?" query ], ASCII only, escapes
# well formed. The fragment ('#') is tested on its own first, to say which rule failed.
_ABSOLUTE_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*"
)
# RFC 7636 §4.1: code-verifier = 43*128unreserved.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 6749 §3.3: scope = scope-token *( SP scope-token ),
# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+(?: [\x21\x23-\x5B\x5D-\x7E]+)*")


def _reject_constant(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity are not JSON (RFC 8259 §6)


# One decoder for every call: json.loads(**kw) would build a new one each time.
JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def single_value(params: FormParams, name: str) -> str | OAuthError | None:
    """The one value of a parameter, None when absent, an error when sent twice."""
    values = params.get_all(name)
    if len(values) > 1:
        # RFC 6749 §3.2: parameters MUST NOT be included more than once.
        return errors.invalid_request(
            "grant.duplicate_parameter", f"The {name} parameter is included more than once."
        )
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
    return values[0] if values and values[0] else None


def missing_parameter(name: str) -> OAuthError:
    return errors.invalid_request(
        "grant.missing_parameter", f"The {name} parameter is required for this grant type."
    )


def uri_problem(value: str) -> str | None:
    """'fragment', 'not_absolute', or None for an absolute URI without fragment."""
    if "#" in value:
        return "fragment"
    return None if _ABSOLUTE_URI.fullmatch(value) else "not_absolute"
