"""The layers (README "Layout"): the core, the config and the ports reach neither the aiohttp
shell nor the adapters, directly or through anything they import, and no module of theirs
imports aiohttp or redis; no module of the core opens a file. Read from the source, every
import statement (those under `TYPE_CHECKING` or inside functions too), so a new import breaks
this test before it ships."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sidecar"
# The modules that must stay pure, and what none of them may reach.
PURE = ("sidecar.core", "sidecar.settings", "sidecar.ports", "sidecar.model", "sidecar.errors")
SHELL = ("sidecar.http", "sidecar.adapters", "sidecar.serve", "sidecar.cli")
THIRD_PARTY = ("aiohttp", "redis")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@functools.cache
def imported(name: str) -> tuple[str, ...]:
    """Every module `name`'s source imports, relative imports resolved."""
    return tuple(_imports(name))


def _imports(name: str) -> Iterator[str]:
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            # `from sidecar.core import htu` imports the module sidecar.core.htu.
            yield from (f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES)


def reach(start: str) -> dict[str, str]:
    """Every sidecar module `start` imports, directly or not, with the one that imports it."""
    seen: dict[str, str] = {start: ""}
    queue = [start]
    while queue:
        current = queue.pop()
        for target in imported(current):
            if target in MODULES and target not in seen:
                seen[target] = current
                queue.append(target)
    return seen


def chain(seen: dict[str, str], name: str) -> str:
    links = [name]
    while seen[links[-1]]:
        links.append(seen[links[-1]])
    return " <- ".join(links)


PURE_MODULES = [name for name in MODULES if within(name, PURE)]


def test_the_walk_sees_the_modules() -> None:
    assert "sidecar.core.jose.compact" in PURE_MODULES and "sidecar.settings" in PURE_MODULES
    assert "sidecar.core.target" in reach("sidecar.settings")  # a known import, followed
    assert "sidecar.http.runtime" in reach("sidecar.http.token")


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_modules_reach_neither_the_shell_nor_the_adapters(name: str) -> None:
    seen = reach(name)
    bad = [chain(seen, m) for m in seen if within(m, SHELL)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_modules_import_neither_aiohttp_nor_redis(name: str) -> None:
    seen = reach(name)
    bad = [f"{module} imports {target} ({chain(seen, module)})" for module in seen
           for target in imported(module) if within(target, THIRD_PARTY)]
    assert not bad, "\n".join(bad)


# The core opens no file (README "Layout"): what a configuration names is read through the
# ConfigFiles port (sidecar.ports, sidecar.adapters.config_files) when a policy is built.
CORE_MODULES = [name for name in MODULES if within(name, ("sidecar.core",))]
FILE_MODULES = ("os", "io", "shutil", "tempfile", "glob", "fileinput", "mmap")
PURE_PATHS = frozenset({"PurePath", "PurePosixPath", "PureWindowsPath"})
FILE_CALLS = frozenset({"open", "read_text", "read_bytes", "write_text", "write_bytes",
                        "iterdir", "glob", "rglob", "stat", "lstat", "exists", "is_file",
                        "is_dir", "unlink", "mkdir", "touch", "load"})


def file_access(name: str) -> Iterator[str]:
    """What in `name`'s source opens, reads or inspects a file, or imports a module for it:
    `open()`, `Path.read_text()` and the like, `tomllib.load(<file>)`, `os`, concrete `Path`."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if within(alias.name, FILE_MODULES) or alias.name == "pathlib":
                    yield f"line {node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if within(node.module, FILE_MODULES):
                yield f"line {node.lineno}: from {node.module} import ..."
            elif node.module == "pathlib":
                concrete = [a.name for a in node.names if a.name not in PURE_PATHS]
                if concrete:
                    yield f"line {node.lineno}: from pathlib import {', '.join(concrete)}"
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else \
                func.attr if isinstance(func, ast.Attribute) else None
            if called in FILE_CALLS:
                yield f"line {node.lineno}: {called}(...)"


def test_the_file_check_sees_file_access() -> None:
    assert "sidecar.core.config_files" in CORE_MODULES
    assert any("read_text(" in found for found in file_access("sidecar.settings.secret_files"))
    assert any("open(" in found for found in file_access("sidecar.adapters.config_files"))


@pytest.mark.parametrize("name", CORE_MODULES)
def test_the_core_opens_no_file(name: str) -> None:
    found = list(file_access(name))
    assert not found, f"{name}: " + "; ".join(found)


# Issue 14's bounds, kept: a module holds one concern, a function does one thing.
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 50


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_small(name: str) -> None:
    source = MODULES[name].read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{name}: split it along its concerns"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno is not None
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == [], f"{name}: {', '.join(long)}"
