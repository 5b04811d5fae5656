"""Secret files (nonce, challenge and API keys): one secret a line."""

from __future__ import annotations

from pathlib import Path

from sidecar.settings.keys import ConfigError


def read_secret_lines(path: str, min_length: int = 32) -> tuple[str, ...]:
    """Read a secrets file: one secret a line, blank lines and `#` comments ignored.

    The first line signs and every line verifies, so a secret can be rotated by adding the
    new one on top and removing the old one later.
    """
    return secret_lines(Path(path).read_text(encoding="utf-8"), path, min_length)


def secret_lines(text: str, path: str, min_length: int = 32) -> tuple[str, ...]:
    """The secrets of a secrets file's text (`read_secret_lines`); ConfigError naming `path`."""
    lines = text.splitlines()
    secrets = tuple(s for s in (line.strip() for line in lines) if s and not s.startswith("#"))
    if not secrets:
        raise ConfigError([f"{path}: no secret in the file"])
    for number, secret in enumerate(secrets, 1):
        if len(secret) < min_length or not secret.isprintable():
            raise ConfigError(
                [f"{path}: secret {number} must be printable text of at least {min_length} "
                 "characters"]
            )
    return secrets
