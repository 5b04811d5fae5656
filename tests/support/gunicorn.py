"""A real gunicorn serving a WSGI app of tests/support on a free port, as an authorization
server written in Django or Flask runs behind the sidecar.

    with running_gunicorn("tests.support.wsgi_echo:app") as url:
        ...   # http://127.0.0.1:<port>, answering
"""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.support.servers import free_port

_ROOT = Path(__file__).resolve().parents[2]
_START_TIMEOUT_SECONDS = 20.0
_STOP_TIMEOUT_SECONDS = 10.0


def _answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _wait_answering(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while not _answers(port):
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with status {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not answer on port {port}")
        time.sleep(0.05)  # polling a child process: there is no event to await


@contextlib.contextmanager
def running_gunicorn(app: str) -> Iterator[str]:
    """gunicorn with one sync worker (its default, Django's usual one); stopped on the way
    out, always. Its own log goes to stderr, which pytest shows when a test fails."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--log-level", "warning", app],
        cwd=_ROOT, stdin=subprocess.DEVNULL)
    try:
        _wait_answering(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
