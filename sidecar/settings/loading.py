"""Loading: the TOML file, the environment overrides, every key built and checked, then the
checks of combinations (`cross_checks`); relative file keys made absolute."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from sidecar.settings.cross_checks import cross_checks
from sidecar.settings.environment import env_name, unknown_variables
from sidecar.settings.keys import Check, ConfigError
from sidecar.settings.sections import SECTIONS, Settings


def load_settings(path: str | Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the TOML file (if any), apply environment overrides, validate; or raise ConfigError."""
    raw: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    settings = settings_from_mapping(raw, os.environ if environ is None else environ, problems)
    if path is None:
        return settings
    # The directory the file is named in, symlinks not followed: a Kubernetes ConfigMap
    # volume links sidecar.toml to ..data/sidecar.toml, and ..data to a timestamped directory
    # that the next update deletes; paths must stay relative to the name the user gave.
    return resolve_paths(settings, Path(os.path.abspath(path)).parent)


def resolve_paths(settings: Settings, base_dir: Path) -> Settings:
    """Every file key made absolute: a relative path is relative to `base_dir`, the directory
    of the configuration file, wherever its value came from (the file or the environment),
    so that the process's working directory never changes which file is read."""
    sections = {}
    for name in SECTIONS:
        section = getattr(settings, name)
        paths = {f.name: str(base_dir / value) for f in dataclasses.fields(section)
                 if f.metadata.get("path") and (value := getattr(section, f.name))}
        sections[name] = dataclasses.replace(section, **paths)
    return dataclasses.replace(settings, **sections, base_dir=str(base_dir))


def settings_from_mapping(
    raw: Mapping[str, Any], environ: Mapping[str, str], problems: list[str] | None = None
) -> Settings:
    problems = [] if problems is None else problems
    for name in raw:
        if name not in SECTIONS:
            problems.append(f"{name}: unknown section (known: {', '.join(SECTIONS)})")
    problems.extend(unknown_variables(environ))
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, Mapping):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = _build_section(name, cls, table, environ, problems)
    if problems:
        raise ConfigError(problems)
    settings = Settings(**sections)
    problems.extend(cross_checks(settings))
    if problems:
        raise ConfigError(problems)
    return settings


def _build_section(
    section: str, cls: type[Any], table: Mapping[str, Any], environ: Mapping[str, str],
    problems: list[str],
) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for name in table:
        if name not in known:
            problems.append(f"{section}.{name}: unknown key (known: {', '.join(known)})")
    values: dict[str, Any] = {}
    for name, fld in known.items():
        dotted = f"{section}.{name}"
        variable = env_name(dotted)
        if dataclasses.is_dataclass(hints[name]):  # a nested table, e.g. [grants.jwt_bearer]
            nested = table.get(name, {})
            if not isinstance(nested, Mapping):
                problems.append(f"{dotted}: expected a table")
                nested = {}
            values[name] = _build_section(dotted, hints[name], nested, environ, problems)
            continue
        if variable in environ:
            value, problem = _from_env(environ[variable], hints[name])
            if problem:
                problems.append(f"{dotted} (from {variable}): {problem}")
                continue
        elif name in table:
            value, problem = _coerce(table[name], hints[name])
            if problem:
                problems.append(f"{dotted}: {problem}")
                continue
        elif fld.default is dataclasses.MISSING:
            problems.append(f"{dotted}: required (set it in the file or in {variable})")
            continue
        else:
            value = fld.default
        check: Check | None = fld.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            problems.append(f"{dotted}: {problem}")
            continue
        values[name] = value
    if len(values) != len(known):
        return None
    return cls(**values)


def _coerce(value: Any, hint: Any) -> tuple[Any, str | None]:
    """Check a TOML value against a field's type; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    if origin is tuple and typing.get_args(hint)[0] is not str:  # an array of tables
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return None, f"expected an array of tables, got {_type_name(value)}"
        return tuple(value), None
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"expected a list of strings, got {_type_name(value)}"
        return tuple(value), None
    if origin is Literal:  # a mode: a string, checked against the choices by its key's check
        if isinstance(value, str):
            return value, None
        return None, f"expected str, got {_type_name(value)}"  # as for a str key
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value), None
    if hint is int and isinstance(value, bool):
        return None, "expected an integer, got a boolean"
    if isinstance(hint, type) and isinstance(value, hint):
        return value, None
    if isinstance(hint, types.UnionType):
        return value, None
    return None, f"expected {hint.__name__}, got {_type_name(value)}"


def _from_env(text: str, hint: Any) -> tuple[Any, str | None]:
    if typing.get_origin(hint) is tuple:
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return _coerce(json.loads(stripped), hint)
            except json.JSONDecodeError:
                return None, "expected a JSON array of strings"
        return tuple(v.strip() for v in stripped.split(",") if v.strip()), None
    if hint is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True, None
        if lowered in ("false", "0", "no", "off"):
            return False, None
        return None, f"expected true or false, got {text!r}"
    if hint in (int, float):
        try:
            return hint(text.strip()), None
        except ValueError:
            return None, f"expected {hint.__name__}, got {text!r}"
    return text, None


def _type_name(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)
