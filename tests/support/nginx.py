"""A real nginx for the tests: deploy/nginx/token-sidecar.conf in front of a sidecar.

The tests run the configuration the project ships, not a copy: `render_deploy_config` takes
deploy/nginx/token-sidecar.conf and changes only what a test instance must (the listen
address, the sidecar's address, the certificate files, optionally `proxy_bind`), failing
loudly when the shipped file no longer has the line a substitution expects. `main_config`
wraps it in a complete nginx.conf whose every file (pid, logs, temporary directories) lives
in the test's own directory, and `running_nginx` starts it in the foreground on a free port,
waits until it listens, and always stops it.

nginx is Debian's (`apt-get install nginx`). Without it the tests skip on a developer's
machine, and fail under CI (`CI` set): CI must install it (scripts/test does).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONF = ROOT / "deploy" / "nginx" / "token-sidecar.conf"
RESOURCE_CONF = ROOT / "deploy" / "nginx" / "token-sidecar-resource.conf"

_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 10.0
_START_ATTEMPTS = 3  # a free port can be taken between choosing it and nginx binding it


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def require_nginx() -> str:
    """The nginx binary; skip without it, except under CI, which must have it."""
    binary = find_nginx()
    if binary is not None:
        return binary
    message = ("nginx is not installed: these tests run a real nginx in front of the sidecar "
               "(apt-get install nginx; ./scripts/test installs it when run as root)")
    if os.environ.get("CI"):
        pytest.fail(f"{message}. CI must install nginx.", pytrace=False)
    pytest.skip(message)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------------------------------
# Configuration.


def _replace_once(text: str, old: str, new: str, source: Path = DEPLOY_CONF) -> str:
    count = text.count(old)
    if count != 1:
        raise AssertionError(
            f"{source.relative_to(ROOT)}: expected exactly one {old!r} to substitute for "
            f"the test instance, found {count}; update tests/support/nginx.py with the file")
    return text.replace(old, new)


def render_deploy_config(*, listen: str, sidecar: str, certificate: Path, key: Path,
                         proxy_bind: str | None = None) -> str:
    """deploy/nginx/token-sidecar.conf with a test instance's addresses and files."""
    text = DEPLOY_CONF.read_text(encoding="utf-8")
    text = _replace_once(text, "listen 443 ssl;", f"listen {listen} ssl;")
    text = _replace_once(text, "server 127.0.0.1:8080;", f"server {sidecar};")
    text = _replace_once(text, "/etc/nginx/tls/as.example.com.crt", str(certificate))
    text = _replace_once(text, "/etc/nginx/tls/as.example.com.key", str(key))
    if proxy_bind is not None:
        text = _replace_once(text, "proxy_pass http://token_sidecar;",
                             f"proxy_pass http://token_sidecar;\n        proxy_bind {proxy_bind};")
    return text


def render_resource_config(*, listen: str, check: str, api: str, certificate: Path, key: Path,
                           proxy_bind: str | None = None) -> str:
    """deploy/nginx/token-sidecar-resource.conf with a test instance's addresses and files."""
    source = RESOURCE_CONF
    text = source.read_text(encoding="utf-8")
    for old, new in (("listen 443 ssl;", f"listen {listen} ssl;"),
                     ("server 127.0.0.1:8181;", f"server {check};"),
                     ("server 127.0.0.1:9100;", f"server {api};"),
                     ("/etc/nginx/tls/api.example.com.crt", str(certificate)),
                     ("/etc/nginx/tls/api.example.com.key", str(key))):
        text = _replace_once(text, old, new, source)
    if proxy_bind is not None:
        text = _replace_once(text, "proxy_pass http://token_sidecar_check;",
                             f"proxy_pass http://token_sidecar_check;\n"
                             f"        proxy_bind {proxy_bind};", source)
    return text


def main_config(prefix: Path, http_context: str) -> str:
    """A complete nginx.conf that keeps every file nginx writes under `prefix`."""
    # As root, nginx's workers would run as `nobody`, which cannot enter the test's private
    # directory: keep them as the current user (the directive is only valid as root).
    user = ""
    if os.geteuid() == 0:
        user = (f"user {pwd.getpwuid(os.geteuid()).pw_name} "
                f"{grp.getgrgid(os.getegid()).gr_name};")
    temp = "\n".join(f"    {name}_temp_path {prefix / name};"
                     for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
daemon off;
master_process on;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;

events {{
    worker_connections 128;
}}

http {{
    access_log {prefix / "access.log"};
{temp}

{http_context}
}}
"""


@dataclass
class NginxFiles:
    prefix: Path

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    @property
    def output(self) -> Path:
        return self.prefix / "nginx.out"

    def write(self, http_context: str) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(main_config(self.prefix, http_context), encoding="utf-8")

    def command(self, binary: str, *extra: str) -> list[str]:
        return [binary, "-p", str(self.prefix), "-c", str(self.conf), *extra]

    def logs(self) -> str:
        parts = []
        for path in (self.output, self.error_log):
            if path.exists():
                text = path.read_text(encoding="utf-8", errors="replace").strip()
                parts.append(f"--- {path.name} ---\n{text or '(empty)'}")
        return "\n".join(parts) or "(nginx wrote no logs)"


def check_config(binary: str, prefix: Path, http_context: str) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the wrapped configuration: does nginx itself accept it?"""
    files = NginxFiles(prefix)
    files.write(http_context)
    return subprocess.run(files.command(binary, "-t"), capture_output=True, text=True,
                          timeout=30, check=False)


# ---------------------------------------------------------------------------------------
# Running it.


@dataclass
class Nginx:
    port: int
    files: NginxFiles
    process: subprocess.Popen[bytes]

    def logs(self) -> str:
        return self.files.logs()


async def _wait_listening(process: subprocess.Popen[bytes], host: str, port: int) -> str | None:
    """None once nginx accepts connections on the port; else why it does not."""
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"nginx exited with status {process.returncode}"
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None
    return f"nginx did not listen on {host}:{port} within {_START_TIMEOUT_SECONDS:.0f}s"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # nginx: fast shutdown
        try:
            process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.asynccontextmanager
async def running_nginx(binary: str, prefix: Path, http_context: Callable[[int], str],
                        host: str = "127.0.0.1") -> AsyncIterator[Nginx]:
    """nginx in the foreground on a free port of `host`; stopped on the way out, always.

    `http_context(port)` gives the configuration for the http {} block, listening on that
    port. A start that fails is retried on another port, then fails the test with nginx's
    own logs; the logs are printed at the end too, so a failing test shows them.
    """
    failures: list[str] = []
    started: Nginx | None = None
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port(host)
        files = NginxFiles(prefix / f"attempt-{attempt}")
        files.write(http_context(port))
        with files.output.open("wb") as output:
            process = subprocess.Popen(files.command(binary), stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=subprocess.STDOUT)
        try:
            problem = await _wait_listening(process, host, port)
        except BaseException:
            _stop(process)
            raise
        if problem is None:
            started = Nginx(port, files, process)
            break
        _stop(process)
        logs = files.logs()
        failures.append(f"attempt {attempt}: {problem}\n{logs}")
        if "Address already in use" not in logs:
            break
    if started is None:
        pytest.fail("nginx did not start:\n" + "\n".join(failures), pytrace=False)
    try:
        yield started
    finally:
        _stop(started.process)
        # Captured, and shown by pytest when the test failed.
        print(f"nginx logs ({started.files.prefix}):\n{started.logs()}")
