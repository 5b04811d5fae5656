"""One API call as the resource-side check sees it, whichever door it came in (inline,
Envoy ext_authz, nginx auth_request, Traefik forwardAuth): the method and path the client
used, its `Authorization` and `DPoP` header values, and the client certificate header the
trusted front proxy wrote. The doors rebuild the method and path; nothing here reads HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from sidecar import errors
from sidecar.errors import OAuthError

Scheme = Literal["DPoP", "Bearer"]

# RFC 6750 §2.1 b64token, the syntax RFC 9449 §7.1 uses for the DPoP scheme too.
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SCHEMES: Final[dict[str, Scheme]] = {"dpop": "DPoP", "bearer": "Bearer"}
MAX_TOKEN_LENGTH: Final = 16384


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class ResourceRequest:
    """`path` is as sent (percent-encoding kept), without query or fragment."""

    method: Final[str]
    path: Final[str]
    authorization: Final[tuple[str, ...]] = ()
    dpop: Final[tuple[str, ...]] = ()
    client_cert_header: Final[str | None] = None  # from a trusted proxy only; the doors see to it
    client_cert_chain_header: Final[str | None] = None

    def __repr__(self) -> str:  # the token and the proof stay out of logs and tracebacks
        return f"ResourceRequest(method={self.method!r}, path={self.path!r})"


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Credentials:
    scheme: Final[Scheme]
    token: Final[str]

    def __repr__(self) -> str:
        return f"Credentials(scheme={self.scheme!r})"


def read_credentials(authorization: tuple[str, ...]) -> Credentials | OAuthError | None:
    """The access token and how it was presented; None when the request carries none in a
    scheme this side knows (RFC 6750 §3.1: then the answer has no error code); an
    `invalid_request` for a malformed or repeated header (RFC 6750 §3.1)."""
    if len(authorization) > 1:
        return errors.invalid_request("resource.multiple_authorization",
                                      "More than one Authorization header was sent.")
    if not authorization:
        return None
    scheme_text, _, rest = authorization[0].strip(" \t").partition(" ")
    scheme = _SCHEMES.get(scheme_text.lower())  # RFC 9110 §11.1: schemes are case-insensitive
    if scheme is None:
        return None
    token = rest.strip(" \t")
    if not token or len(token) > MAX_TOKEN_LENGTH or not _TOKEN68.fullmatch(token):
        return errors.invalid_request("resource.malformed_authorization",
                                      f"The Authorization header is not a valid {scheme} "
                                      "credential.")
    return Credentials(scheme, token)
