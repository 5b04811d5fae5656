"""The -00...-02 form: an RFC 7521 `client_assertion`, "<attestation>~<pop>"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sidecar import errors
from sidecar.core.attestation.config import LEGACY_ASSERTION_TYPE
from sidecar.errors import OAuthError
from sidecar.model import FormParams


@dataclass(frozen=True, slots=True)
class LegacyAssertion:
    attestation: tuple[str, ...]
    pop: tuple[str, ...]
    remaining: FormParams  # the parameters without client_assertion and client_assertion_type

    def __repr__(self) -> str:
        return "LegacyAssertion()"


_LEGACY_PARAMS: Final = frozenset({"client_assertion", "client_assertion_type"})


def legacy_client_assertion(params: FormParams) -> LegacyAssertion | OAuthError | None:
    """The attestation and PoP of a -00...-02 request (`client_assertion_type` =
    `...:jwt-client-attestation`, `client_assertion` = the two JWTs joined by `~`); None when
    the request does not use that form. The caller checks `accept_legacy_client_assertion`."""
    if params.get("client_assertion_type") != LEGACY_ASSERTION_TYPE:
        return None
    parts = params.get("client_assertion", "").split("~")
    if len(parts) != 2 or not all(parts):
        return errors.invalid_client("attestation.legacy_malformed", "The client_assertion is "
                                     "not a client attestation and its PoP joined by '~'.")
    remaining = FormParams({name: params.get_all(name) for name in params
                            if name not in _LEGACY_PARAMS})
    return LegacyAssertion((parts[0],), (parts[1],), remaining)
