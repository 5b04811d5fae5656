"""A tiny WSGI app that reads its body the way Django does, for a real gunicorn to serve.

Django reads exactly `CONTENT_LENGTH` bytes of `wsgi.input` and nothing when it is absent
(`django.core.handlers.wsgi.LimitedStream`), so a body that reaches gunicorn chunked is an
empty body to Django. The answer says what the app saw both ways: by `CONTENT_LENGTH`, and
to the end of the input (gunicorn terminates `wsgi.input`, chunked or not). Bodies are
hashed as they are read, never held.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

_BLOCK = 65536

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _digest(stream: BinaryIO, limit: int | None) -> tuple[int, str]:
    """Length and SHA-256 of what `stream` yields: `limit` bytes, or to its end."""
    digest, total = hashlib.sha256(), 0
    while limit is None or total < limit:
        block = stream.read(_BLOCK if limit is None else min(_BLOCK, limit - total))
        if not block:
            break
        digest.update(block)
        total += len(block)
    return total, digest.hexdigest()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream: BinaryIO = environ["wsgi.input"]
    content_length = environ.get("CONTENT_LENGTH") or None
    django = _digest(stream, int(content_length or 0))
    rest = _digest(stream, None)  # what Django would never read
    whole = django if not rest[0] else (-1, "more than CONTENT_LENGTH")
    if content_length is None:
        whole = rest
    answer = {
        "method": environ["REQUEST_METHOD"],
        "content_length": content_length,
        "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING"),
        "django_body_length": django[0],
        "django_body_sha256": django[1],
        "body_length": whole[0],
        "body_sha256": whole[1],
    }
    body = json.dumps(answer).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
