"""A checked reader of TOML tables, for every `[[...]]` array the configuration has (clients,
attesters, trusted issuers): each problem named `<prefix>[<i>].<key>`, all of them reported."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from pathlib import PurePath
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sidecar.core.config_files import resolve
from sidecar.core.jose.key_sets import JwkEntry, JwksError, parse_jwks
from sidecar.ports import ConfigFiles
from sidecar.settings import ConfigError

T = TypeVar("T")


def read_table_array(raw: object, base_dir: PurePath, files: ConfigFiles, prefix: str, *,
                     build: Callable[[TableReader], T | None],
                     identity: Callable[[T], str], identity_key: str) -> tuple[T, ...]:
    """A TOML array of tables (`[[prefix]]`), each built by `build`; raise ConfigError naming
    every problem as `<prefix>[<i>].<key>`, a repeated identity (`identity_key`) included.
    The files the tables name are read through `files`, relative to `base_dir`."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError([f"{prefix}: expected an array of tables"])
    problems: list[str] = []
    built: list[T] = []
    seen: set[str] = set()
    for index, table in enumerate(raw):
        if not isinstance(table, Mapping):
            problems.append(f"{prefix}[{index}]: expected a table")
            continue
        item = build(TableReader(table, f"{prefix}[{index}]", problems, base_dir, files))
        if item is None:
            continue
        if identity(item) in seen:
            problems.append(
                f"{prefix}[{index}].{identity_key}: {identity(item)!r} is listed twice")
            continue
        seen.add(identity(item))
        built.append(item)
    if problems:
        raise ConfigError(problems)
    return tuple(built)


class TableReader:
    """Reads typed values out of one TOML table, recording each problem as `<prefix>.<key>`.
    Every getter returns None (and records why) when the value is absent or unusable. The
    files it names are read through `files` (the core opens none itself)."""

    def __init__(self, table: Mapping[str, Any], prefix: str, problems: list[str],
                 base_dir: PurePath, files: ConfigFiles) -> None:
        self.table, self.prefix, self.problems, self.base_dir = table, prefix, problems, base_dir
        self.files = files
        self._failed = False

    @property
    def ok(self) -> bool:
        return not self._failed

    def problem(self, key: str, message: str) -> None:
        self._failed = True
        self.problems.append(f"{self.prefix}.{key}: {message}")

    def unknown_keys(self, known: frozenset[str]) -> None:
        for name in self.table:
            if name not in known:
                self.problem(name, "unknown key")

    def has(self, key: str) -> bool:
        return key in self.table

    def string(self, key: str, *, required: bool = False) -> str | None:
        value = self.table.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return None
        if not isinstance(value, str) or not value:
            self.problem(key, f"expected a non-empty string, got {_type_name(value)}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.table.get(key)
        if value is not None and not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_type_name(value)}")
            return None
        return value

    def positive_int(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.problem(key, f"expected a positive integer (seconds), got {value!r}")
            return None
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(key, f"expected a list of strings, got {_type_name(value)}")
            return None
        return tuple(value)

    def algorithms(self, key: str, allowed: Collection[str]) -> tuple[str, ...] | None:
        """A list of JWS algorithm names, each one of `allowed` and at least one."""
        algorithms = self.strings(key)
        if algorithms is not None:
            unknown = [a for a in algorithms if a not in allowed]
            if unknown or not algorithms:
                self.problem(key, f"unsupported {unknown!r}; allowed: {', '.join(allowed)}")
        return algorithms

    def json_object(self, key: str) -> str | None:
        """A table, as compact ASCII JSON (safe as a header value)."""
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.problem(key, f"expected a table, got {_type_name(value)}")
            return None
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        except (TypeError, ValueError):
            self.problem(key, "holds a value JSON cannot express (a date or time?)")
            return None

    def path(self, key: str) -> PurePath | None:
        value = self.string(key)
        if value is None:
            return None
        return resolve(self.base_dir, value)  # an absolute value stays as it is

    def file_bytes(self, key: str, max_bytes: int = 1 << 20) -> bytes | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            data = self.files.read(str(path), max_bytes)
        except OSError as exc:
            self.problem(key, f"cannot read {str(path)!r}: {exc.strerror}")
            return None
        if len(data) > max_bytes:
            self.problem(key, f"{str(path)!r} is larger than {max_bytes} bytes")
            return None
        return data

    def http_url(self, key: str) -> str | None:
        value = self.string(key)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            self.problem(key, f"expected an absolute http(s) URL without fragment, got {value!r}")
            return None
        return value

    def jwks(self, *, need_x5c: bool = False) -> tuple[JwkEntry, ...]:
        """The keys of inline `jwks` (a table or JSON text) or of `jwks_file`."""
        document: object = None
        key = "jwks" if self.has("jwks") else "jwks_file"
        if key == "jwks":
            document = self.table["jwks"]
            if not isinstance(document, Mapping | str):
                self.problem(key, f"expected a table or JSON text, got {_type_name(document)}")
                return ()
        else:
            data = self.file_bytes(key)
            if data is None:
                return ()
            document = data.decode("utf-8", "replace")
        try:
            keys = parse_jwks(document, strict=True)
        except JwksError as exc:
            self.problem(key, str(exc))
            return ()
        if need_x5c and not any(k.x5c for k in keys):
            self.problem(key, "self_signed_tls_client_auth needs keys with an x5c certificate")
            return ()
        return keys


def _type_name(value: object) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
