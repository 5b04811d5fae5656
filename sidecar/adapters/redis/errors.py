"""Every failure becomes a StoreError that never carries a stored value or a binding."""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from sidecar.ports import StoreError

_TRANSPORT_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
# Server replies meaning "this is not (or no longer) a writable master": a Sentinel store then
# drops its pooled connections, so that new ones ask the sentinels where the master is now.
NOT_A_MASTER = ("READONLY", "NOREPLICAS", "MASTERDOWN")


def operation_name(operation: str, kind: str | None) -> str:
    return f"redis {operation}({kind})" if kind is not None else f"redis {operation}"


def store_error(operation: str, kind: str | None, exc: BaseException) -> StoreError:
    where = operation_name(operation, kind)
    if isinstance(exc, _TRANSPORT_ERRORS):
        # Written by redis-py or the OS about the socket: host, port, errno. No arguments.
        detail = str(exc) or "no detail"
        return StoreError(f"{where}: {type(exc).__name__}: {detail}")
    if isinstance(exc, RedisClusterException):
        # Its text can quote the command; keep the transport error behind it, if any.
        cause = exc.__cause__
        detail = f": {type(cause).__name__}: {cause}" if isinstance(
            cause, _TRANSPORT_ERRORS) else ""
        return StoreError(f"{where}: {type(exc).__name__}{detail}")
    # Sent by the server (or a client-side data error): keep only the error code, because a
    # server error text can echo the command's arguments.
    code = error_code(exc)
    suffix = f" {code}" if code else ""
    return StoreError(f"{where}: {type(exc).__name__}{suffix}")


def error_code(exc: BaseException) -> str | None:
    """The server's error code (`WRONGTYPE`, `READONLY`...), which redis-py keeps in
    `status_code` when it maps the code to an exception class, else in the text."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code:
        return code
    first = str(exc).split(" ", 1)[0]
    return first if first.isalpha() and first.isupper() else None


def chained_cause(exc: BaseException) -> BaseException | None:
    """Chain transport errors for their traceback; drop server errors (their text may echo
    arguments)."""
    return exc if isinstance(exc, _TRANSPORT_ERRORS) else None
