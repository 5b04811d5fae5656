"""The `ConfigFiles` port on the local file system: the files a configuration names, read
when a policy is built. Relative paths were made absolute against the configuration file's
directory before they get here (`sidecar.settings.resolve_paths`, `core.config_files.resolve`)."""

from __future__ import annotations

from typing import Final


class LocalFiles:
    """Reads files from the local disk, following symlinks (a Kubernetes Secret volume's
    `..data` link) as `open()` does."""

    __slots__ = ()

    def read(self, path: str, max_bytes: int | None = None) -> bytes:
        with open(path, "rb") as handle:
            return handle.read() if max_bytes is None else handle.read(max_bytes + 1)


LOCAL_FILES: Final = LocalFiles()
