"""A real `redis-server` for tests: started on a free 127.0.0.1 port, no persistence.

    server = RedisServer()
    server.start()          # waits until it answers PING
    server.url              # redis://127.0.0.1:<port>/0
    server.pause()          # SIGSTOP: connections hang (socket timeouts fire)
    server.resume()         # SIGCONT
    server.kill()           # SIGKILL: connections are refused
    server.restart()        # the same port, empty data
    server.stop()           # SIGTERM, wait, remove the temp dir

`RedisProcess(lambda p: server_args(p, "--requirepass", "pw"))` starts any other kind of
server (a cluster node, a replica, a sentinel, TLS-only); tests/support/redis_cluster.py
builds Cluster and Sentinel setups from it.

Set REDIS_SERVER to the binary to use another one than `redis-server` on PATH.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from redis import Redis

DEFAULT_BINARY = "/usr/bin/redis-server"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def find_redis_server() -> str | None:
    candidate = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or DEFAULT_BINARY
    return candidate if os.access(candidate, os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The arguments after the binary, for the process's current port(s) and directory.
ArgsFor = Callable[["RedisProcess"], list[str]]


class StartError(RuntimeError):
    pass


class _PortTakenError(Exception):
    pass


def answers(host: str, port: int, tls: ssl.SSLContext | None = None,
            timeout: float = 0.5) -> bool:
    """True when something on host:port replies to PING (+PONG, or an error like -NOAUTH)."""
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
            return reply[:1] in (b"+", b"-")
    except OSError:
        return False


class RedisProcess:
    """One redis-server process (a server, a cluster node, a replica or a sentinel)."""

    def __init__(
        self,
        args_for: ArgsFor,
        *,
        binary: str | None = None,
        name: str = "redis",
        ports: int = 1,
        tls: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> None:
        found = binary or find_redis_server()
        if found is None:
            raise FileNotFoundError("redis-server not found (set REDIS_SERVER)")
        self.binary = found
        self.args_for = args_for
        self.name = name
        self.tls = tls  # to wait for readiness on a TLS-only server
        self.password = password  # for client()
        self.host = HOST
        self.port = 0
        self.extra_ports: list[int] = []  # e.g. the cluster bus port
        self._ports = ports
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._paused = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def directory(self) -> Path:
        assert self._dir is not None
        return Path(self._dir.name)

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start on free ports (the same ones again after a kill/stop) and wait for PING."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix=f"{self.name}-test-")
        keep_ports = self.port != 0
        for _attempt in range(5):
            if not keep_ports:
                ports = _distinct_free_ports(self._ports)
                self.port, self.extra_ports = ports[0], ports[1:]
            self._spawn()
            try:
                self._wait_ready()
                return
            except _PortTakenError:
                if keep_ports:
                    raise StartError(f"{self.name}: port {self.port} is taken") from None
        raise StartError(f"{self.name}: could not find free ports")

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def kill(self) -> None:
        """SIGKILL: the port stops answering at once; the directory is kept for start()."""
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

    def client(self, **kwargs: object) -> Redis:
        """A synchronous redis-py client for fixture-side commands (not for the proofs)."""
        options: dict[str, object] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0,
                                      "password": self.password}
        options.update(kwargs)
        return Redis(host=self.host, port=self.port, **options)  # type: ignore[arg-type]

    def __enter__(self) -> RedisProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _spawn(self) -> None:
        args = [self.binary, *self.args_for(self)]
        args += ["--logfile", str(self.log_path), "--daemonize", "no"]
        with contextlib.suppress(FileNotFoundError):
            self.log_path.unlink()  # a stale log would hide why this start failed
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._paused = False

    def _wait_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                self._process = None
                text = stderr + self.log_tail()
                if "Address already in use" in text:
                    raise _PortTakenError
                raise StartError(f"{self.name} exited at start:\n{text[-3000:]}")
            if answers(self.host, self.port, self.tls):
                if process.stderr:
                    process.stderr.close()
                return
            time.sleep(0.01)
        self._terminate()
        raise StartError(f"{self.name} did not answer PING within {START_TIMEOUT} s")

    def _terminate(self) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            if self._paused:
                process.send_signal(signal.SIGCONT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if process.stderr and not process.stderr.closed:
            process.stderr.close()
        self._process = None
        self._paused = False

    def _signal(self, signum: signal.Signals) -> None:
        if not self.running:
            raise RuntimeError(f"{self.name} is not running")
        assert self._process is not None
        self._process.send_signal(signum)


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def server_args(process: RedisProcess, *extra: str) -> list[str]:
    """A plain, non-persistent server on the process's port. `extra` comes last, so it can
    override (for a TLS-only server: "--tls-port", str(process.port), "--port", "0")."""
    return [
        "--port", str(process.port),
        "--bind", HOST,
        "--save", "",
        "--appendonly", "no",
        "--dir", str(process.directory),
        "--protected-mode", "no",
        *extra,
    ]


class RedisServer(RedisProcess):
    """A plain standalone server (see the module docstring)."""

    def __init__(self, binary: str | None = None) -> None:
        super().__init__(server_args, binary=binary, name="redis")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, with empty data."""
        self._terminate()
        self.start()

    def ping(self, timeout: float = 1.0) -> bool:
        return answers(self.host, self.port, timeout=timeout)
