"""Fixtures of the pipeline tests (tests/support/pipeline.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.pipeline import Pipeline


@pytest.fixture
def refusing_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # held, so that no other process can take the port
        yield sock.getsockname()[1]


@pytest.fixture
async def pipeline(tmp_path: Path, refusing_port: int) -> AsyncIterator[Pipeline]:
    harness = Pipeline(tmp_path, refusing_port)
    yield harness
    await harness.close()
