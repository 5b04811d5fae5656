"""Typed application state shared by the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from sidecar.core.decide import Env
from sidecar.core.policy import Policy
from sidecar.http.parse import ReadPolicy
from sidecar.http.proxy import Upstream
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import Settings

CONTEXT_PREFIX = "X-Token-"


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a handler needs, built once per application."""

    settings: Settings
    read_policy: ReadPolicy
    env: Env
    upstream: Upstream
    stripped_headers: tuple[str, ...]  # certificate headers, dropped from untrusted peers


SETTINGS = web.AppKey("settings", Settings)
POLICY = web.AppKey("policy", Policy)
RUNTIME = web.AppKey("runtime", Runtime)
STORE = web.AppKey("store", ReplayStore)
CLOCK = web.AppKey("clock", Clock)
