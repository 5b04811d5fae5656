"""Log set-up: one JSON object per line (or a human line for the demo).

Records carry their structured fields under the `token_sidecar` attribute. What goes there is
chosen by the callers from the decision summary: ids, codes and timings, never a secret,
token, assertion, proof or certificate.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from sidecar import fast_json

FIELDS_ATTRIBUTE = "token_sidecar"


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second _timestamp_prefix last formatted
        self._prefix = ""

    def format(self, record: logging.LogRecord) -> str:
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
        """What `format` writes for a record of these fields made at `created`."""
        entry = self._head(created, int((created - int(created)) * 1000),
                           logging.getLevelName(level), name, os.getpid())
        entry.update(fields)
        return fast_json.dumps(entry).decode()

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
    going through `Logger.handle`. Under the handler's lock, as `emit` is; a failure goes to
    `handleError` as there."""
    created = time.time()
    handler.acquire()
    try:
        line = formatter.format_fields(created, level, logger.name, fields)
        handler.stream.write(line + handler.terminator)
        handler.flush()
    except RecursionError:
        raise
    except Exception:
        handler.handleError(_record(logger, message, fields, level))
    finally:
        handler.release()


class HumanFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            shown = " ".join(f"{k}={v}" for k, v in fields.items() if v not in ("", None))
            return f"{time.strftime('%H:%M:%S')} {shown}"
        return f"{time.strftime('%H:%M:%S')} {record.levelname.lower()} {record.getMessage()}"


def configure_logging(level: str = "info", fmt: str = "json") -> None:
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
