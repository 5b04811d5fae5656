"""What `pip install .` builds: metadata as PEP 639 says, and the files the demo needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_license_is_an_spdx_expression_setuptools_understands() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    # PEP 639 license expressions need setuptools 77 (the table form is deprecated).
    assert "setuptools>=77" in PYPROJECT["build-system"]["requires"]
    assert not any(c.startswith("License ::") for c in PYPROJECT["project"].get("classifiers", []))


def test_the_demo_registry_is_package_data() -> None:
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["sidecar"]
    for name in ("clients.toml", "demo-client.secret"):
        path = ROOT / "sidecar" / "demo_registry" / name
        assert path.is_file()
        assert any(path.match(f"sidecar/{pattern}") for pattern in patterns), name
