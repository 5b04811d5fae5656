"""Strict reading of a decision-API call's JSON body.

The body is one JSON object (RFC 8259) with no duplicate member names (§4 leaves duplicates
undefined; two parsers of one call must never read different values), no NaN or infinities
(not JSON at all, §6), and each member of the type the API documents. Every refusal names the
field, so an integrator sees at once what to fix; no field's value is ever repeated back (it
may be a secret: `clientSecret`, `parameters`, `dpop`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sidecar.core.jose.compact import DuplicateMemberError, strict_json_value

MAX_DEPTH: Final = 16
_MAX_LIST_ITEMS: Final = 100


@dataclass(frozen=True, slots=True)
class FieldError:
    """A call the API cannot read: answered `400` with this message."""

    message: str


def _depth(value: object, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(item, level + 1) for item in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(item, level + 1) for item in value), default=level)
    return level


def parse_object(body: bytes) -> dict[str, object] | FieldError:
    """The call's members, or why the body is not a JSON object this API reads."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return FieldError("The body is not UTF-8.")
    try:
        value = strict_json_value(text)  # the JOSE layer's reading: no duplicates, no NaN
    except DuplicateMemberError as duplicate:
        return FieldError(f"The member {duplicate.name[:64]!r} appears more than once.")
    except (ValueError, RecursionError):
        return FieldError("The body is not valid JSON.")
    if not isinstance(value, dict):
        return FieldError("The body must be a JSON object.")
    if _depth(value) > MAX_DEPTH:
        return FieldError(f"The body is nested more than {MAX_DEPTH} levels deep.")
    return value


class Fields:
    """Typed access to the members of one call. Each reader returns the value, None when the
    member is absent or `null`, or a FieldError naming the member."""

    def __init__(self, members: Mapping[str, object], known: frozenset[str]) -> None:
        self._members = members
        self._known = known

    def unknown(self) -> FieldError | None:
        """A member the API does not define is refused: a misspelt `dpopNonceRequired` must
        not silently turn a check off."""
        extra = sorted(name for name in self._members if name not in self._known)
        if extra:
            return FieldError(f"Unknown member {extra[0][:64]!r}.")
        return None

    def text(self, name: str, *, max_length: int) -> str | FieldError | None:
        value = self._members.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            return FieldError(f"{name} must be a string.")
        if len(value) > max_length:
            return FieldError(f"{name} is longer than {max_length} characters.")
        return value

    def flag(self, name: str) -> bool | FieldError | None:
        value = self._members.get(name)
        if value is None or isinstance(value, bool):
            return value
        return FieldError(f"{name} must be true or false.")

    def seconds(self, name: str) -> int | FieldError | None:
        value = self._members.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            return FieldError(f"{name} must be a whole number of seconds (0 to 2^31-1).")
        return value

    def texts(self, name: str, *, max_length: int) -> tuple[str, ...] | FieldError | None:
        value = self._members.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > _MAX_LIST_ITEMS \
                or not all(isinstance(item, str) and len(item) <= max_length for item in value):
            return FieldError(f"{name} must be a list of at most {_MAX_LIST_ITEMS} strings of "
                              f"at most {max_length} characters.")
        return tuple(value)

    def json_object(self, name: str) -> dict[str, object] | FieldError | None:
        value = self._members.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            return FieldError(f"{name} must be a JSON object.")
        return value
