"""Log set-up: one JSON object per line (or a human line for the demo).

Records carry their structured fields under the `token_sidecar` attribute. What goes there is
chosen by the callers from the decision summary: ids, codes and timings, never a secret,
token, assertion, proof or certificate.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

FIELDS_ATTRIBUTE = "token_sidecar"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # tells workers apart
        }
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            # The exception type only: a traceback can quote request data.
            entry["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else ""
        return json.dumps(entry, separators=(",", ":"), default=str)


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
    # aiohttp's own access log would duplicate ours, without the decision.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
