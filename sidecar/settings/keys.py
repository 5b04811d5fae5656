"""The pieces every section is made of: `key()` (a default, a check, whether it is a secret
or names a file), `ConfigError`, and the types of the settings that choose a mode."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any, Literal, TypeVar, overload

ENV_PREFIX = "TOKEN_SIDECAR_"
REQUIRED: Any = dataclasses.MISSING

Check = Callable[[Any], str | None]  # returns a problem, or None when the value is fine


class ConfigError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


T = TypeVar("T")


@overload
def key(default: T, check: Check | None = None, secret: bool = False,
        path: bool = False) -> T: ...
@overload
def key(*, check: Check | None = None, secret: bool = False, path: bool = False) -> Any: ...


def key(default: Any = REQUIRED, check: Check | None = None, secret: bool = False,
        path: bool = False) -> Any:
    """A config key: its default (none means required) and its check. A `path` key names a
    file; a relative one is relative to the configuration file (`load_settings`). Typed by its
    default, which must fit the field's annotation (a required key: by the annotation, as
    `dataclasses.field` is)."""
    return field(default=default, metadata={"check": check, "secret": secret, "path": path})


CertFormat = Literal["nginx", "envoy-xfcc", "traefik", "aws-alb", "rfc9440", "pem", "der-base64"]
CERT_FORMATS: tuple[CertFormat, ...] = typing.get_args(CertFormat)
# The settings that choose a mode: each a Literal, its check made from it (`checks.one_of_literal`).
PathMatch = Literal["lenient", "exact"]
EventLoop = Literal["auto", "asyncio"]
GcMode = Literal["tuned", "python"]
FailureMode = Literal["closed", "open"]
WhenFull = Literal["evict", "refuse"]
UpstreamTokenType = Literal["pass", "rewrite", "require"]
UnknownClients = Literal["reject", "forward"]
AssertionAudiences = Literal["issuer", "issuer_or_endpoint"]
PasswordGrant = Literal["forward", "reject"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "human"]
GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
    "urn:openid:params:grant-type:ciba",
    "urn:ietf:params:oauth:grant-type:pre-authorized_code",
)
DPOP_ALGORITHMS = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "PS384", "PS512",
                   "RS256", "RS384", "RS512")
