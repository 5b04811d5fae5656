"""The sidecar as a real process (`python -m sidecar.cli serve`), as a platform runs it."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.servers import free_port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> None:
    lines = []
    for section, values in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")


class SidecarProcess:
    def __init__(self, config: Path, sections: dict[str, dict[str, Any]],
                 max_descriptors: tuple[int, int] | None = None) -> None:
        self.config = config
        self.max_descriptors = max_descriptors  # RLIMIT_NOFILE (soft, hard) of the process
        self.port, self.admin_port = free_port(), free_port()
        server = {"listen": f"127.0.0.1:{self.port}",
                  "admin_listen": f"127.0.0.1:{self.admin_port}",
                  "public_token_endpoint": "https://as.example.com/token"}
        self.sections = {**sections, "server": {**server, **sections.get("server", {})}}
        write_config(config, self.sections)
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self, timeout: float = 20.0) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sidecar.cli", "serve", "--config", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=None if self.max_descriptors is None else self._limit)
        self._reader = asyncio.create_task(self._read())
        await self.wait_ready(timeout)

    def _limit(self) -> None:
        assert self.max_descriptors is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, self.max_descriptors)

    async def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise AssertionError("sidecar exited:\n" + "\n".join(self.output))
                try:
                    async with session.get(self.admin_url + "/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError("sidecar not ready:\n" + "\n".join(self.output))
                await asyncio.sleep(0.05)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.output.append(line.decode(errors="replace").rstrip("\n"))

    def signal(self, signum: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def stop(self) -> None:
        """SIGTERM (so a supervisor stops its workers too), then SIGKILL if it hangs."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.send_signal(signal.SIGKILL)
                await self.process.wait()
        if self._reader is not None:
            await self._reader
