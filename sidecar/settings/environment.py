"""The environment overrides' names: `TOKEN_SIDECAR_<SECTION>_<KEY>`, and the variables that
look like ours but are not keys."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Mapping
from typing import Any

from sidecar.settings.keys import ENV_PREFIX
from sidecar.settings.sections import SECTIONS


def env_variables() -> dict[str, str]:
    """Every TOKEN_SIDECAR_* variable a key can be set by, and that key (`section.key`)."""
    names: dict[str, str] = {}

    def add(section: str, cls: type[Any]) -> None:
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            dotted = f"{section}.{fld.name}"
            if dataclasses.is_dataclass(hints[fld.name]):
                add(dotted, hints[fld.name])
            else:
                names[env_name(dotted)] = dotted

    for section, cls in SECTIONS.items():
        add(section, cls)
    return names


def env_name(dotted: str) -> str:
    return f"{ENV_PREFIX}{dotted}".upper().replace(".", "_")


# What Kubernetes injects for a Service named `token-sidecar` or `token-sidecar-<x>` in the
# namespace (enableServiceLinks, on by default): TOKEN_SIDECAR_SERVICE_HOST,
# TOKEN_SIDECAR_REDIS_PORT_6379_TCP_ADDR, ... These are not misspelt keys.
_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$")


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A misspelt variable is refused like an unknown TOML key: silently ignoring it would
    leave the setting it was meant to change at its default."""
    known = env_variables()
    problems = []
    for name in sorted(environ):
        if name.startswith(ENV_PREFIX) and name not in known \
                and not _SERVICE_LINK.search(name):
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]} ({known[close[0]]})?" if close
                    else f"variables are {ENV_PREFIX}<SECTION>_<KEY>")
            problems.append(f"{name}: unknown environment variable; {hint}")
    return problems
