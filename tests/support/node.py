"""npm packages for tests that drive a real JavaScript client: installed once per machine
into a cache directory (never into the repository), with the ordinary npm client."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_CACHE = Path(tempfile.gettempdir()) / "token-sidecar-tests-npm"
_INSTALL_TIMEOUT_SECONDS = 300


def require_node(major: int) -> str:
    """The node binary, or the test is skipped: node/npm absent, or older than `major`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for this test")
    version = subprocess.run([node, "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < major:
        pytest.skip(f"node >= {major} is needed (found {version})")
    return node


def npm_package(spec: str, name: str) -> Path:
    """The directory of package `name` installed from `spec` (e.g. "oauth4webapi@3")."""
    target = _CACHE / spec.replace("/", "_")
    installed = target / "node_modules" / name
    if (installed / "package.json").exists():
        return installed
    npm = shutil.which("npm")
    assert npm is not None
    # Installed beside, then moved into place: a half-finished install is never used.
    _CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=_CACHE, prefix="install-"))
    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
             "--no-save", "--loglevel=error", spec],
            check=False, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_SECONDS,
            env={**os.environ, "npm_config_update_notifier": "false"})
        if done.returncode != 0:
            pytest.fail(f"npm install {spec} failed:\n{done.stdout}\n{done.stderr}")
        with contextlib.suppress(OSError):  # another run may have won the race: use its copy
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return installed
