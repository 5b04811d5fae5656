"""A real `redis-server` for tests: started on a free 127.0.0.1 port, no persistence.

    server = RedisServer()
    server.start()          # waits until it answers PING
    server.url              # redis://127.0.0.1:<port>/0
    server.pause()          # SIGSTOP: connections hang (socket timeouts fire)
    server.resume()         # SIGCONT
    server.kill()           # SIGKILL: connections are refused
    server.restart()        # the same port, empty data
    server.stop()           # SIGTERM, wait, remove the temp dir

Set REDIS_SERVER to the binary to use another one than `redis-server` on PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

DEFAULT_BINARY = "/usr/bin/redis-server"


def find_redis_server() -> str | None:
    candidate = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or DEFAULT_BINARY
    return candidate if os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, binary: str | None = None, start_timeout: float = 10.0) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server not found (set REDIS_SERVER)")
        self.binary = found
        self.start_timeout = start_timeout
        self.host = "127.0.0.1"
        self.port = 0
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on a free port (or on the previous one after a stop/kill) and wait for PING."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="redis-test-")
        keep_port = self.port != 0
        for _attempt in range(5):
            if not keep_port:
                self.port = free_port()
            self._spawn()
            try:
                self._wait_ready()
                return
            except _PortTakenError:
                if keep_port:
                    raise RuntimeError(f"port {self.port} is taken; cannot restart") from None
        raise RuntimeError("could not find a free port for redis-server")

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 5 s); removes the temp dir."""
        self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """SIGKILL: the port stops answering at once; the temp dir is kept for restart()."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5)
        self._paused = False

    def pause(self) -> None:
        """SIGSTOP: the kernel still accepts connections, but nothing answers."""
        self._signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        self._signal(signal.SIGCONT)
        self._paused = False

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, with empty data."""
        self._terminate()
        self.start()

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> None:
        assert self._dir is not None
        directory = Path(self._dir.name)
        self._log = directory / "redis.log"
        self._process = subprocess.Popen(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", self.host,
                "--save", "",
                "--appendonly", "no",
                "--dir", str(directory),
                "--logfile", str(self._log),
                "--daemonize", "no",
                "--protected-mode", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._paused = False

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                log = self._log.read_text(errors="replace") if self._log.exists() else ""
                self._process = None
                if "Address already in use" in log:
                    raise _PortTakenError
                raise RuntimeError(f"redis-server exited at start:\n{log[-2000:]}")
            if self.ping(timeout=0.5):
                return
            time.sleep(0.01)
        self._terminate()
        raise RuntimeError(f"redis-server did not answer PING within {self.start_timeout} s")

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            if self._paused:
                process.send_signal(signal.SIGCONT)  # a stopped process handles SIGTERM later
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._paused = False

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError("redis-server is not running")
        assert self._process is not None
        self._process.send_signal(signum)


class _PortTakenError(Exception):
    pass
