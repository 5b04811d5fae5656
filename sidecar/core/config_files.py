"""The files a configuration names, as the core reads them: through the `ConfigFiles` port
(`sidecar.ports`), never by opening them itself. Paths are joined as text (`PurePath`): the
file system is the adapter's."""

from __future__ import annotations

from pathlib import PurePath

from sidecar.ports import ConfigFiles
from sidecar.settings import secret_lines


def resolve(base_dir: str | PurePath, path: str | PurePath) -> PurePath:
    """A path from the configuration: relative ones are relative to `base_dir`, the
    directory of the file that named them; absolute ones stay as they are."""
    return PurePath(base_dir) / path


def file_text(files: ConfigFiles, path: str | PurePath) -> str:
    """The whole file as UTF-8 text, line ends as `Path.read_text` gives them (universal
    newlines); OSError and UnicodeDecodeError as it raises them."""
    text = files.read(str(path)).decode("utf-8")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_secrets(files: ConfigFiles, path: str | PurePath,
                 min_length: int = 32) -> tuple[str, ...]:
    """A secrets file: one secret a line (`sidecar.settings.secret_lines`)."""
    return secret_lines(file_text(files, path), str(path), min_length)
