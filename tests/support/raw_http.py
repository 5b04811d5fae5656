"""HTTP/1.1 over a plain socket, for request targets a client library would normalise away
(`/a/../token`, `/token%2F`, absolute-form, `*`): the request line goes out as written."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

__all__ = ["RawAnswer", "send_raw"]


@dataclass
class RawAnswer:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str | None:
        """The OAuth error code, when the answer is an OAuth JSON error."""
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return None
        body = self.json()
        return body.get("error") if isinstance(body, dict) else None


async def send_raw(base_url: str, target: str, *, method: str = "POST", body: bytes = b"",
                   headers: dict[str, str] | None = None) -> RawAnswer:
    """One request on its own connection (`Connection: close`); the whole answer is read."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}",
             f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return _parse(answer)


def _parse(answer: bytes) -> RawAnswer:
    head, _, payload = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        payload = _dechunk(payload)
    return RawAnswer(int(status_line.split(" ")[1]), headers, payload)


def _dechunk(payload: bytes) -> bytes:
    body = b""
    while payload:
        size_line, _, rest = payload.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += rest[:size]
        payload = rest[size + 2:]
    return body
