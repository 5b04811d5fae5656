"""Every reference in the repository resolves inside it: no pointer to a specification or
notes that only the authors had, and every relative link of the Markdown files exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("README.md", "pyproject.toml", "sidecar", "tests", "bench", "deploy", "config",
           "scripts")
# Documents that are not in the repository, as the code used to cite them.
OUTSIDE = re.compile(r"\bSPEC\b|SPEC\.md|research notes|research/|\.\./shared|/work/"
                     r"|reference/token-api-fields")
TEXT_SUFFIXES = {".py", ".md", ".toml", ".yaml", ".yml", ".conf", ".txt", ".lua", ""}


def shipped_files() -> list[Path]:
    files = []
    for name in SHIPPED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [p for p in candidates if p.is_file() and p.suffix in TEXT_SUFFIXES
                  and "__pycache__" not in p.parts and p != Path(__file__).resolve()]
    return files


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_points_outside_the_repository(path: Path) -> None:
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [f"{number}: {line.strip()}" for number, line in enumerate(text.splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", [p for p in shipped_files() if p.suffix == ".md"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        assert (path.parent / target.split("#")[0]).exists(), target
