"""sidecar/logs.py: the access line, written directly or through a LogRecord, is the same line,
and other handlers still get every record."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from typing import Any

import pytest

from sidecar import logs

FIELDS: dict[str, Any] = {"request_id": "r-1", "action": "OK", "status": 200,
                          "upstream_status": None, "duration_seconds": 0.00123, "notes": ""}


@pytest.fixture
def stdout(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """configure_logging on stdout, the root logger's handlers and level put back afterwards."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(logging, "logThreads", logging.logThreads)
    monkeypatch.setattr(logging, "logMultiprocessing", logging.logMultiprocessing)
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    logs.configure_logging("info", "json")
    return out


def test_the_direct_line_is_the_line_of_a_record(stdout: io.StringIO) -> None:
    root = logging.getLogger()
    # As in production, the JSON handler alone (pytest adds its capture handlers per test).
    handler = next(h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter))
    root.handlers[:] = [handler]
    logger = logging.getLogger("token_sidecar.access")
    assert logs._only_json_handler(logger, logging.INFO) is not None  # the direct path
    logs.log_fields(logger, "OK token.ok", FIELDS)
    through_record = handler.format(logs._record(logger, "OK token.ok", FIELDS, logging.INFO))
    direct = json.loads(stdout.getvalue())
    expected = json.loads(through_record)
    assert direct.pop("time")[:19] == expected.pop("time")[:19]
    assert list(direct.items()) == list(expected.items())
    assert stdout.getvalue().count("\n") == 1


@pytest.mark.parametrize("fields", [
    FIELDS,
    {"client_id": "caf\u00e9", "notes": "a\x7fb"},  # written by json, escaped
    {"duration_seconds": 0.00005, "ratio": float("nan")},  # floats orjson writes otherwise
    {"level": "from the caller", "request_id": "r-1"},  # replaces the head's field, in place
    {"scopes": ["a", "b"], "big": 2**70},  # not a flat object of plain scalars
    {},
])
def test_the_text_of_the_direct_line_is_the_text_of_a_record(fields: dict[str, Any]) -> None:
    formatter = logs.JsonFormatter()
    logger = logging.getLogger("token_sidecar.access")
    record = logs._record(logger, "OK token.ok", fields, logging.INFO)
    record.created, record.msecs = 1765075317.0421, 42.0
    direct = formatter.format_fields(1765075317.0421, logging.INFO, logger.name, fields)
    assert direct == formatter.format(record)
    assert json.loads(direct)["time"] == "2025-12-07T02:41:57.042Z"


def test_a_forked_worker_writes_its_own_pid() -> None:
    formatter = logs.JsonFormatter()
    formatter.format_fields(0.0, logging.INFO, "token_sidecar.access", FIELDS)  # head kept
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: its lines name it, not the process it was forked from
        line = formatter.format_fields(0.0, logging.INFO, "token_sidecar.access", FIELDS)
        os.write(write, str(json.loads(line)["pid"] == os.getpid()).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    assert os.read(read, 10) == b"True"
    os.close(read)


def test_another_handler_gets_the_record(stdout: io.StringIO) -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logging.getLogger().addHandler(Keep())
    logs.log_fields(logging.getLogger("token_sidecar.access"), "OK token.ok", FIELDS)
    assert [getattr(r, logs.FIELDS_ATTRIBUTE) for r in seen] == [FIELDS]
    assert json.loads(stdout.getvalue())["request_id"] == "r-1"


def test_below_the_level_nothing_is_written(stdout: io.StringIO) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    logs.log_fields(logging.getLogger("token_sidecar.access"), "OK token.ok", FIELDS)
    assert stdout.getvalue() == ""


class CountingStream(io.StringIO):
    """stdout, counting the `write` calls (each one a system call on a real stream)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, stdout: io.StringIO) -> CountingStream:
    out = CountingStream()
    monkeypatch.setattr("sys.stdout", out)
    logs.configure_logging("info", "json")
    return out


def as_in_production() -> None:
    """The JSON handler alone (pytest adds its capture handlers to each test's call)."""
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if isinstance(h.formatter, logs.JsonFormatter)]


def request_ids(out: io.StringIO) -> list[str]:
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    return [entry.get("request_id") or entry["message"] for entry in entries]


async def test_the_lines_of_one_event_loop_turn_go_out_in_one_write(
        counted: CountingStream) -> None:
    as_in_production()
    logger = logging.getLogger("token_sidecar.access")
    for n in range(3):
        logs.log_fields(logger, "OK token.ok", {**FIELDS, "request_id": f"r-{n}"})
    assert counted.getvalue() == ""  # until the turn ends
    await asyncio.sleep(0)
    assert request_ids(counted) == ["r-0", "r-1", "r-2"]
    assert counted.writes == 1


async def test_another_record_in_the_same_turn_is_written_after_the_waiting_lines(
        counted: CountingStream) -> None:
    as_in_production()
    logs.log_fields(logging.getLogger("token_sidecar.access"), "OK token.ok", FIELDS)
    logging.getLogger("token_sidecar.runtime").warning("then this")
    assert request_ids(counted) == ["r-1", "then this"]  # written at once, in order
    await asyncio.sleep(0)
    assert request_ids(counted) == ["r-1", "then this"]  # and not twice


async def test_waiting_lines_are_written_at_exit_and_when_logging_is_configured_again(
        counted: CountingStream, monkeypatch: pytest.MonkeyPatch) -> None:
    as_in_production()
    logger = logging.getLogger("token_sidecar.access")
    logs.log_fields(logger, "OK token.ok", FIELDS)
    logs._flush_at_exit()  # registered with atexit
    assert request_ids(counted) == ["r-1"]
    logs.log_fields(logger, "OK token.ok", {**FIELDS, "request_id": "r-2"})
    monkeypatch.setattr("sys.stdout", io.StringIO())
    logs.configure_logging("info", "json")
    assert request_ids(counted) == ["r-1", "r-2"]
