"""Access tokens bound to what the client proved at the token endpoint (README "Bound tokens").

An authorization server that knows no DPoP issues a bearer token even to a client whose proof
the sidecar accepted. The sidecar keeps `sha256(access_token) -> {jkt | x5t#S256, client_id,
scope, exp}` in the store for the token's lifetime, and the introspection answers and the
resource side read it back. The value is compact JSON with the `cnf` member names of
RFC 9449 §6.1 (`jkt`) and RFC 8705 §3.1 (`x5t#S256`), so it reads the same as a JWT's `cnf`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sidecar import fast_json

ACCESS_BINDING = "access"  # store kind: sha256(access_token) -> the JSON below
JKT = "jkt"  # RFC 9449 §6.1
X5T_S256 = "x5t#S256"  # RFC 8705 §3.1


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class AccessBinding:
    """What one access token is bound to, and to whom it was issued."""

    jkt: Final[str | None] = None
    x5t_s256: Final[str | None] = None
    client_id: Final[str] = ""
    scope: Final[str] = ""
    exp: Final[int] = 0  # seconds since the epoch; 0 when the answer said nothing

    @property
    def is_dpop(self) -> bool:
        return self.jkt is not None

    def cnf(self) -> dict[str, str]:
        """The confirmation members (RFC 7800 §3.1) this binding gives a token."""
        members: dict[str, str] = {}
        if self.jkt:
            members[JKT] = self.jkt
        if self.x5t_s256:
            members[X5T_S256] = self.x5t_s256
        return members

    def encode(self) -> str:
        value: dict[str, Any] = {**self.cnf(), "client_id": self.client_id}
        if self.scope:
            value["scope"] = self.scope
        if self.exp:
            value["exp"] = self.exp
        return fast_json.dumps(value).decode()

    def __repr__(self) -> str:
        return (f"AccessBinding(jkt={self.jkt!r}, x5t_s256={self.x5t_s256!r}, "
                f"client_id={self.client_id!r})")


def decode_binding(text: str | None) -> AccessBinding | None:
    """The binding stored under a token, or None when there is none or it cannot be read
    (a value written by something else is not a binding this sidecar can vouch for)."""
    if not text:
        return None
    value = fast_json.loads_object(text)
    if value is None:
        return None
    jkt, x5t = _text_or_none(value.get(JKT)), _text_or_none(value.get(X5T_S256))
    if jkt is None and x5t is None:
        return None
    exp = value.get("exp", 0)
    return AccessBinding(
        jkt=jkt, x5t_s256=x5t,
        client_id=_text_or_none(value.get("client_id")) or "",
        scope=_text_or_none(value.get("scope")) or "",
        exp=exp if isinstance(exp, int) and not isinstance(exp, bool) else 0)


def binding_for_answer(token: dict[str, Any], *, jkt: str | None, x5t_s256: str | None,
                       client_id: str, requested_scope: str, now: float,
                       default_ttl_seconds: int) -> tuple[str, AccessBinding, int] | None:
    """(access token, binding, TTL seconds) for a successful token answer, or None when the
    answer carries no access token or nothing was proven.

    The TTL is the answer's `expires_in` (RFC 6749 §5.1), else the configured default: a
    binding that outlived its token would only cost memory, one that expired first would
    silently turn the token into a bearer token.
    """
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token or not (jkt or x5t_s256):
        return None
    ttl = _expires_in(token.get("expires_in")) or default_ttl_seconds
    # RFC 6749 §5.1: the answer's scope is the granted one; without it, the requested one.
    scope = token.get("scope")
    binding = AccessBinding(
        jkt=jkt, x5t_s256=x5t_s256, client_id=client_id,
        scope=scope if isinstance(scope, str) else requested_scope,
        exp=int(now) + ttl)
    return access_token, binding, ttl


def _expires_in(value: object) -> int | None:
    # Some servers send expires_in as a string ("3600"); a JSON number is what §5.1 says.
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
