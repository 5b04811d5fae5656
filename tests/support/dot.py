"""django-oauth-toolkit (DOT) under a real gunicorn: an authorization server nobody here wrote.

    server = DotServer()
    server.start()              # temp dir, migrate + applications, gunicorn; waits until it answers
    server.url                  # http://127.0.0.1:<port>
    server.token_url            # url + "/o/token/" (client_credentials, secret_basic or _post)
    server.client               # a confidential client_credentials client (clear secret)
    server.resource_server      # the credentials a resource server introspects with
    server.stop()               # SIGTERM gunicorn, remove the temp dir

The `dot_server` fixture (tests/support/dot_fixtures.py, loaded by the root conftest) is one
server for the session; tests that use it must not stop it, and revoke only tokens they got.

How DOT authenticates an introspection call (oauth2_provider/views/introspect.py, a
`ClientProtectedScopedResourceView`): first the caller's own client credentials, HTTP Basic
or `client_id`/`client_secret` in the body, of ANY registered application (DOT does not
restrict introspection to resource servers); failing that, a Bearer access token that carries
the `introspection` scope. `resource_server` is a confidential application of its own whose
credentials are used the first way. Revocation (RFC 7009 §2.1) needs the credentials of the
client the token was issued to; a token of another client is "revoked" with 200 and stays
active.

DOT knows no DPoP and no certificate binding: its tokens are opaque bearer tokens and its
introspection answers `{"active", "scope", "exp", "client_id"}` without `cnf`.

Startup is DOT's real `migrate` on a fresh sqlite (most of it: 2 to 5 s on a loaded 2-core
machine), then gunicorn with two sync workers (under a second), polled with a bound until
the RFC 8414 metadata document answers: 3 to 7 s, once per session.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SETTINGS = "tests.support.dot_server.settings"
START_TIMEOUT_SECONDS = 30.0  # two cores shared with other test runs: Django imports are slow
STOP_TIMEOUT_SECONDS = 10.0
START_ATTEMPTS = 3  # a free port can be taken between choosing it and gunicorn binding it


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str  # in clear: DOT keeps only a hash

    @property
    def basic(self) -> tuple[str, str]:
        """For `requests`' `auth=` (HTTP Basic, client_secret_basic)."""
        return (self.client_id, self.client_secret)


class DotStartError(RuntimeError):
    pass


def _credentials(name: str) -> Credentials:
    return Credentials(client_id=f"{name}-{secrets.token_hex(4)}",
                       client_secret=secrets.token_urlsafe(32))


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class DotServer:
    token_path = "/o/token/"
    introspect_path = "/o/introspect/"
    revoke_path = "/o/revoke_token/"
    metadata_path = "/.well-known/oauth-authorization-server"  # RFC 8414 §3, at the root
    openid_configuration_path = "/o/.well-known/openid-configuration"  # OIDC discovery
    hello_path = "/api/hello"  # DOT's ProtectedResourceView: Bearer only

    def __init__(self, *, issuer: str | None = None, allowed_hosts: tuple[str, ...] = (),
                 workers: int = 2) -> None:
        """`issuer`: DOT's OIDC_ISS_ENDPOINT (default: this server's own URL), which also
        makes the endpoint URLs in its metadata; `allowed_hosts`: Host names accepted besides
        127.0.0.1 and localhost (a sidecar with `upstream.preserve_host`)."""
        self.client = _credentials("dot-client")  # confidential, client_credentials
        self.resource_server = _credentials("dot-resource-server")  # introspects
        self.port = 0
        self.startup_seconds = 0.0
        self._issuer = issuer
        self._allowed_hosts = allowed_hosts
        self._workers = workers
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def token_url(self) -> str:
        return self.url + self.token_path

    @property
    def introspect_url(self) -> str:
        return self.url + self.introspect_path

    @property
    def revoke_url(self) -> str:
        return self.url + self.revoke_path

    @property
    def directory(self) -> Path:
        assert self._dir is not None, "not started"
        return Path(self._dir.name)

    @property
    def log_path(self) -> Path:
        return self.directory / "gunicorn.log"

    def log_tail(self, size: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-size:]
        except OSError:
            return "(no log)"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self._dir = tempfile.TemporaryDirectory(prefix="dot-server-")
        try:
            (self.directory / "oidc-rsa.pem").write_text(_rsa_pem())
            self._seed()
            self._serve()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        self._terminate()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> DotServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- internals -----------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS,
                "DOT_SERVER_DIR": str(self.directory), "PYTHONPATH": str(ROOT),
                "DOT_ISSUER": self._issuer or self.url,
                "DOT_ALLOWED_HOSTS": ",".join(self._allowed_hosts), "PYTHONUNBUFFERED": "1"}

    def _seed(self) -> None:
        grant = "client-credentials"
        applications = [
            {"name": "test client", "grant_type": grant, **vars(self.client)},
            {"name": "resource server", "grant_type": grant, **vars(self.resource_server)},
        ]
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.dot_server.seed"], cwd=ROOT, env=self._env(),
            input=json.dumps(applications).encode(), capture_output=True,
            timeout=START_TIMEOUT_SECONDS, check=False)
        if done.returncode != 0:
            raise DotStartError("DOT migrate/seed failed:\n"
                                + done.stderr.decode(errors="replace")[-4000:])

    def _serve(self) -> None:
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            self._spawn()
            problem = self._wait_ready()
            if problem is None:
                return
            self._terminate()
            if "Address already in use" not in self.log_tail():
                raise DotStartError(f"{problem}:\n{self.log_tail()}")
        raise DotStartError(f"gunicorn found no free port:\n{self.log_tail()}")

    def _spawn(self) -> None:
        command = [sys.executable, "-m", "gunicorn", "tests.support.dot_server.wsgi:application",
                   "--bind", f"{HOST}:{self.port}", "--workers", str(self._workers),
                   "--worker-class", "sync", "--graceful-timeout", "5",
                   # Its control socket would be one path ($HOME) for every test run.
                   "--no-control-socket",
                   "--access-logfile", "-", "--error-logfile", "-"]
        with self.log_path.open("wb") as log:  # this attempt's log only
            self._process = subprocess.Popen(command, cwd=ROOT, env=self._env(),
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)

    def _wait_ready(self) -> str | None:
        """None once DOT itself answers (a worker booted Django); else why it does not."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return f"gunicorn exited with status {process.returncode}"
            if self._answers():
                return None
            time.sleep(0.05)
        return f"DOT did not answer within {START_TIMEOUT_SECONDS:.0f} s"

    def _answers(self) -> bool:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            connection.request("GET", self.metadata_path)
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # gunicorn: graceful, stops its workers
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_SECONDS)
            if process.poll() is None:
                process.kill()
                process.wait()
