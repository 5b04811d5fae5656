"""The values that flow through one token request.

`TokenRequest` is what the HTTP shell (or the decision API) hands to the core: the fields of
the token API the product is modelled on (`parameters`, the Authorization header Basic
credentials come from, `clientCertificate`, `dpop`, `htm` (the method), the attestation
headers), already read but not yet judged. `htu` is not a request field: it is always the
configured public URL, held by the policy, never what the client's Host header says.
`Decision` is what the core hands back: forward with context, or respond with an error.
Both are immutable.

Request records: the dataclasses made once or more for every request (`TokenRequest`,
`Summary`, `Forward`, the credentials, the grant, the upstream's answer and its edit, the
resource side's request, proof and verdict; the list is `tests/test_model.py`'s
`REQUEST_RECORDS`) are `@dataclass(slots=True)` with every field `Final`: read-only to mypy,
which refuses any assignment to one, but not frozen at run time. Fast path: a frozen
dataclass's `__init__` sets each field through `object.__setattr__`, about 1 000
instructions a field under callgrind; the ten records of a token request without DPoP (50
fields) cost 63 k instructions that way, 8% of the request.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar, overload

from sidecar.errors import OAuthError

T = TypeVar("T")


class Action(enum.StrEnum):
    OK = "OK"
    PASSWORD = "PASSWORD"  # noqa: S105 - an action name, not a secret
    TOKEN_EXCHANGE = "TOKEN_EXCHANGE"  # noqa: S105
    JWT_BEARER = "JWT_BEARER"
    BAD_REQUEST = "BAD_REQUEST"
    INVALID_CLIENT = "INVALID_CLIENT"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

    @classmethod
    def for_error(cls, error: OAuthError) -> Action:
        if error.status >= 500:
            return cls.INTERNAL_SERVER_ERROR
        if error.code == "invalid_client":
            return cls.INVALID_CLIENT
        return cls.BAD_REQUEST


class FormParams(Mapping[str, str]):
    """Parsed `application/x-www-form-urlencoded` parameters.

    As a mapping it gives the single value of each parameter; `get_all` gives every value of
    the parameters that may repeat (`resource`, `audience`).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, tuple[str, ...]]) -> None:
        self._values = dict(values)

    def __getitem__(self, name: str) -> str:
        return self._values[name][0]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get_all(self, name: str) -> tuple[str, ...]:
        return self._values.get(name, ())

    # Mapping's own get() and `in` go through __getitem__ and a caught KeyError for every
    # absent parameter; the steps ask for many absent ones on every request.
    @overload
    def get(self, name: str, /) -> str | None: ...
    @overload
    def get(self, name: str, /, default: str | T) -> str | T: ...

    def get(self, name: str, /, default: object = None) -> object:
        values = self._values.get(name)
        return values[0] if values else default

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        # Parameters hold secrets (client_secret, password, tokens): never print values.
        return f"FormParams(names={sorted(self._values)!r})"


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class TokenRequest:
    """One token request as read from the wire; nothing in it is trusted yet."""

    method: Final[str]
    parameters: Final[FormParams]
    authorization: Final[str | None] = None
    client_cert_header: Final[str | None] = None  # only set when the peer is a trusted proxy
    client_cert_chain_header: Final[str | None] = None
    dpop: Final[tuple[str, ...]] = ()  # every DPoP header value, to tell one from several
    attestation: Final[tuple[str, ...]] = ()
    attestation_pop: Final[tuple[str, ...]] = ()
    body: Final[bytes] = b""  # the entity body exactly as received, forwarded unchanged


    def __repr__(self) -> str:
        return f"TokenRequest(method={self.method!r}, parameters={self.parameters!r})"


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class ReplayCheck:
    """A single-use value still to be burned, by the last step of the decision:
    `store.first_use(kind, value, ttl_seconds)`; when it returns False, answer `error`."""

    kind: Final[str]
    value: Final[str]
    ttl_seconds: Final[float]
    error: Final[OAuthError]

    def __repr__(self) -> str:  # the value may be a jti or a token
        return f"ReplayCheck(kind={self.kind!r})"


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Summary:
    """What logs and metrics say about a decision, whatever it was."""

    result_code: Final[str]
    message: Final[str]
    grant_type: Final[str] = ""
    client_id: Final[str] = ""
    auth_method: Final[str] = ""


@dataclass(slots=True)  # a request record: read-only by type (sidecar/model.py)
class Forward:
    action: Final[Action]
    summary: Final[Summary]
    # Context header names without the configured prefix ("Action", "Client-Id", ...).
    context: Final[tuple[tuple[str, str], ...]] = ()
    # What the answer step needs to know about this request (DPoP key, bindings, ...).
    dpop_jkt: Final[str | None] = None
    cert_s256: Final[str | None] = None  # x5t#S256 of the accepted client certificate (RFC 8705 §3)
    requested_scope: Final[str] = ""  # the scope asked for, for the access-token binding
    bind_refresh_token_to: Final[str | None] = None
    # A replay check was skipped (the store down, store.failure_mode = "open"): the context
    # says so too (Replay-Check: skipped); metrics count it.
    replay_check_skipped: Final[bool] = False

    @property
    def proves_possession(self) -> bool:
        """A DPoP key or a client certificate was proven: the issued token is to be bound."""
        return self.dpop_jkt is not None or self.cert_s256 is not None


@dataclass(frozen=True, slots=True)
class Respond:
    error: OAuthError
    summary: Summary

    @property
    def action(self) -> Action:
        return Action.for_error(self.error)

    @classmethod
    def before_decision(cls, error: OAuthError) -> Respond:
        """A request refused before the pipeline ran (its method, target, body or form):
        nothing is known of its client or grant yet."""
        return cls(error, Summary(error.result_code, error.description))


Decision = Forward | Respond
