"""Log set-up: one JSON object per line (or a human line for the demo).

Records carry their structured fields under the `token_sidecar` attribute. What goes there is
chosen by the callers from the decision summary: ids, codes and timings, never a secret,
token, assertion, proof or certificate.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
from typing import Any

from sidecar import fast_json
from sidecar.running_loop import running_loop

FIELDS_ATTRIBUTE = "token_sidecar"
_HEAD_KEYS = frozenset({"time", "level", "logger", "pid"})  # what `_head` writes first


def _process_id() -> int:
    """`os.getpid()` without its system call: the pid is read again in a forked child (a
    worker), where `register_at_fork` resets it."""
    return _PROCESS_ID[0]


_PROCESS_ID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PROCESS_ID.__setitem__(0, os.getpid()))


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second _timestamp_prefix last formatted
        self._prefix = ""
        self.turn = _Turn()  # the access lines of this event-loop turn (`_write_line`)
        self._line_heads: dict[tuple[int, str, int], str] = {}  # `_line_head`'s, by pid too

    def format(self, record: logging.LogRecord) -> str:
        # Called by the handler under its lock, just before it writes: the access lines
        # waiting for the end of this turn go first, so the lines stay in order.
        self.turn.flush()
        entry = self._head(record.created, int(record.msecs), record.levelname, record.name,
                           record.process)
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            # The exception type only: a traceback can quote request data.
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        # Fast path: orjson, the same text as json.dumps (sidecar/fast_json.py).
        return fast_json.dumps(entry).decode()

    def format_fields(self, created: float, level: int, name: str,
                      fields: dict[str, Any]) -> str:
        """What `format` writes for a record of these fields made at `created`. Fast path:
        the line's head is text kept per second and per logger (`_line_head`), the fields
        one flat object (`fast_json.dumps_flat`), joined; no dict made, none merged, no
        `getpid` system call (half of the 6 µs `format_fields` took for an access line)."""
        if not fields or _HEAD_KEYS & fields.keys():  # the fields would replace the head's
            entry = self._head(created, int((created - int(created)) * 1000),
                               logging.getLevelName(level), name, _process_id())
            entry.update(fields)
            return fast_json.dumps(entry).decode()
        head = self._line_heads.get((level, name, _process_id()))
        if head is None:
            head = self._line_head(level, name)
        body = fast_json.dumps_flat(fields).decode()
        millis = int((created - int(created)) * 1000)
        return f'{{"time":"{self._timestamp_prefix(created)}.{millis:03d}Z",{head},{body[1:]}'

    def _line_head(self, level: int, name: str) -> str:
        """`"level":...,"logger":...,"pid":...` as `format` writes them, kept (a few loggers)."""
        pid = _process_id()
        head = fast_json.dumps({"level": logging.getLevelName(level).lower(), "logger": name,
                                "pid": pid}).decode()[1:-1]
        self._line_heads[(level, name, pid)] = head
        return head

    def _head(self, created: float, msecs: int, level_name: str, name: str,
              pid: int | None) -> dict[str, Any]:
        return {
            "time": f"{self._timestamp_prefix(created)}.{msecs:03d}Z",
            "level": level_name.lower(),
            "logger": name,
            "pid": pid,  # tells workers apart
        }

    def _timestamp_prefix(self, created: float) -> str:
        """Fast path: `strftime(gmtime())` once a second, not once a line (one line a request)."""
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._prefix


def log_fields(logger: logging.Logger, message: str, fields: dict[str, Any],
               level: int = logging.INFO) -> None:
    """Fast path for a structured line (the access log: one per request). With only the JSON
    handler to write to, the line is written directly (`_write_line`); otherwise the record
    is made and handed to the handlers, skipping `Logger._log`'s `findCaller` stack walk and
    its `extra` copying. Levels, filters and handlers apply as for `logger.info`."""
    if not logger.isEnabledFor(level):
        return
    direct = _only_json_handler(logger, level)
    if direct is not None:
        _write_line(*direct, logger, message, fields, level=level)
        return
    logger.handle(_record(logger, message, fields, level))


def _record(logger: logging.Logger, message: str, fields: dict[str, Any],
            level: int) -> logging.LogRecord:
    record = logger.makeRecord(logger.name, level, "(unknown file)", 0, message, (), None)
    setattr(record, FIELDS_ATTRIBUTE, fields)
    return record


def _only_json_handler(
        logger: logging.Logger, level: int,
) -> tuple[logging.StreamHandler[Any], JsonFormatter] | None:
    """The JSON handler `configure_logging` installs, when it is the only place the line goes
    (no other handler, no filter on the way): then `_write_line` may write it itself."""
    root = logger.parent
    if logger.handlers or logger.filters or not logger.propagate or root is not logging.root \
            or root.filters or len(root.handlers) != 1:
        return None
    handler, formatter = root.handlers[0], root.handlers[0].formatter
    if type(handler) is not logging.StreamHandler or handler.filters or level < handler.level \
            or type(formatter) is not JsonFormatter:
        return None
    return handler, formatter


def _write_line(handler: logging.StreamHandler[Any], formatter: JsonFormatter,
                logger: logging.Logger, message: str, fields: dict[str, Any], *,
                level: int) -> None:
    """Fast path: the line `StreamHandler.emit` would write, without making a `LogRecord`
    (about a third of the cost of a log line: the clock, the pid, a dozen attributes) or
    going through `Logger.handle`; on an event loop, written with the other lines of the
    same turn (`_Turn`). A failure goes to `handleError` as in `emit`."""
    try:
        line = formatter.format_fields(time.time(), level, logger.name, fields)
    except RecursionError:
        raise
    except Exception:
        handler.handleError(_record(logger, message, fields, level))
        return
    formatter.turn.add(handler, line + handler.terminator)


class _Turn:
    """Fast path: the access lines of one event-loop turn, written with one `write` and one
    flush when the turn ends (`call_soon`), not one each: the `write` system call was half
    of a log line's cost (py-spy: 10 µs of 21 a token request), and a turn under load ends
    several requests. A line waits microseconds, never past the turn: any other record
    written through the handler, an exit (`atexit`) and `configure_logging` write the waiting
    lines first. Off an event loop a line is written at once."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._handler: logging.StreamHandler[Any] | None = None

    def add(self, handler: logging.StreamHandler[Any], line: str) -> None:
        if self._lines:
            self._lines.append(line)
            return
        try:
            loop = running_loop()  # no getpid() system call (sidecar/running_loop.py)
        except RuntimeError:
            self._write(handler, line)
            return
        self._lines.append(line)
        self._handler = handler
        loop.call_soon(self.flush)

    def flush(self) -> None:
        if not self._lines or self._handler is None:
            return
        lines, self._lines = self._lines, []
        self._write(self._handler, "".join(lines))

    @staticmethod
    def _write(handler: logging.StreamHandler[Any], text: str) -> None:
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": "access log lines"}))
        finally:
            handler.release()


def _flush_at_exit() -> None:
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, JsonFormatter):
            formatter.turn.flush()


atexit.register(_flush_at_exit)


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            shown = " ".join(f"{k}={v}" for k, v in fields.items() if v not in ("", None))
            return f"{time.strftime('%H:%M:%S')} {shown}"
        return f"{time.strftime('%H:%M:%S')} {record.levelname.lower()} {record.getMessage()}"


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    _flush_at_exit()  # the lines the handlers being replaced still hold
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Fast path: every record would look up its thread's and process's names, which neither
    # formatter writes (the pid, which the JSON line carries, is still recorded).
    logging.logThreads = False
    logging.logMultiprocessing = False
    # aiohttp's own access log would duplicate ours, without the decision.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
