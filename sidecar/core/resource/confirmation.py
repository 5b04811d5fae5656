"""The facts about an access token read from a set of claims: a JWT access token's payload
(RFC 9068 §2.2) or an introspection answer (RFC 7662 §2.2) carry the same member names.

- `cnf` (RFC 7800 §3.1): `jkt` (RFC 9449 §6.1, §6.2) and `x5t#S256` (RFC 8705 §3.1, §3.2),
  each a base64url SHA-256 digest. A `cnf` that is not an object, a member of the wrong
  shape, or a `cnf` that confirms only by a method the sidecar cannot check (`jwk`, `jwe`,
  `jku`, `kid`, RFC 7800 §3.2-3.5) is refused: reading it as "unbound" would turn a bound
  token into a bearer token.
- `client_id`, `sub`, `scope`: strings, forwarded to the API as `X-Token-*` context, so no
  control characters; absent is "".
- `exp`: a NumericDate (RFC 7519 §2), kept as whole seconds.

Pure: a reason value (a short stable string) when the claims cannot be used, never an
exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

from sidecar.core.access_binding import JKT, X5T_S256
from sidecar.core.jose.claims import float_date
from sidecar.core.resource.token_facts import Source, TokenFacts

ClaimsFailure = Literal["bad_cnf", "unsupported_cnf", "bad_claim"]

# base64url of a SHA-256 digest: 43 characters, no padding (RFC 7638 §3, RFC 8705 §3.1). The
# unused bits of the last character are not checked (RFC 8705's own example has them set): a
# thumbprint is compared as a string with the one computed, which is canonical.
_SHA256_B64URL: Final = re.compile(r"[A-Za-z0-9_-]{43}")
# Printable, no control characters (header values, RFC 9110 §5.5); bounded.
_CONTEXT_TEXT: Final = re.compile(r"[^\x00-\x1f\x7f]{0,4096}")


def facts_from_claims(claims: Mapping[str, object],
                      source: Source) -> TokenFacts | ClaimsFailure:
    """The facts the claims state, or why they cannot be used."""
    cnf = _confirmation(claims.get("cnf"))
    if isinstance(cnf, str):
        return cnf
    texts: list[str] = []
    for name in ("client_id", "sub", "scope"):
        value = claims.get(name, "")
        if not isinstance(value, str) or not _CONTEXT_TEXT.fullmatch(value):
            return "bad_claim"
        texts.append(value)
    exp = float_date(claims["exp"]) if "exp" in claims else 0
    if exp is None or exp < 0:
        return "bad_claim"
    client_id, subject, scope = texts
    return TokenFacts(source=source, jkt=cnf[0], x5t_s256=cnf[1], client_id=client_id,
                      subject=subject, scope=scope, expires_at=int(exp))


def _confirmation(cnf: object) -> tuple[str | None, str | None] | ClaimsFailure:
    if cnf is None:
        return None, None
    if not isinstance(cnf, Mapping):
        return "bad_cnf"
    jkt, x5t = cnf.get(JKT), cnf.get(X5T_S256)
    for value in (jkt, x5t):
        if value is not None and not (isinstance(value, str)
                                      and _SHA256_B64URL.fullmatch(value)):
            return "bad_cnf"
    if jkt is None and x5t is None and cnf:
        # A confirmation method this side cannot check (jwk, kid, x5t#S512, ...): read as
        # "unbound" it would make a bound token a bearer one (RFC 7800 §3.1).
        return "unsupported_cnf"
    return (jkt if isinstance(jkt, str) else None,
            x5t if isinstance(x5t, str) else None)
