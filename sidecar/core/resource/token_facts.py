"""What a resource server knows about an access token, whichever source told it.

Three sources, tried in this order (README "The resource side"): the binding the sidecar
recorded when it saw the token issued (`sidecar.core.access_binding`), the claims of a JWT
access token verified against the authorization server's keys (RFC 9068), and the upstream's
introspection answer (RFC 7662). Each gives the same facts: the confirmation (`cnf`, RFC 7800
§3.1) the token is bound to, if any, and who it was issued to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Source = Literal["recorded", "jwt", "introspection"]


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class TokenFacts:
    """An active access token as one source described it. An inactive, unknown or
    unverifiable token is no `TokenFacts` at all: the source answers None."""

    source: Final[Source]
    jkt: Final[str | None] = None  # cnf.jkt, RFC 9449 §6.1
    x5t_s256: Final[str | None] = None  # cnf["x5t#S256"], RFC 8705 §3.1
    client_id: Final[str] = ""
    subject: Final[str] = ""
    scope: Final[str] = ""
    expires_at: Final[int] = 0  # seconds since the epoch; 0 when the source said nothing

    @property
    def is_bound(self) -> bool:
        return self.jkt is not None or self.x5t_s256 is not None

    def __repr__(self) -> str:  # never the subject or scope in a log by accident
        return (f"TokenFacts(source={self.source!r}, jkt={self.jkt!r}, "
                f"x5t_s256={self.x5t_s256!r}, client_id={self.client_id!r})")
