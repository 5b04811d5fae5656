"""Character rules shared by the RFC modules, and how a value is quoted in an error detail."""

from __future__ import annotations

import re
from typing import Final

# RFC 6749 Appendix A.1: client-id = *VSCHAR, VSCHAR = %x20-7E. Ids and subjects are also
# forwarded as header values, so this check is what keeps CR/LF out of the upstream's headers.
VSCHAR: Final = re.compile(r"[\x20-\x7e]+")

DETAIL_MAX: Final = 200  # an `OAuthError.detail` is logged: bounded, whatever a client sends


def clip(value: object, limit: int = DETAIL_MAX) -> str:
    """`repr(value)`, cut to `limit` characters (and marked so) for an error detail."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def clip_detail(detail: str) -> str:
    """An error detail cut to `DETAIL_MAX` characters."""
    return detail[:DETAIL_MAX]
