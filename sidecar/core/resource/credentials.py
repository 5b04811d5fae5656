"""The resource server's own client credentials, for calling the upstream's introspection
endpoint (RFC 7662 §2.1) with `client_secret_basic` (RFC 6749 §2.3.1).

`resource.introspection_credentials_file` is a TOML file with exactly `client_id = "..."` and
`client_secret = "..."`: TOML rather than a `client_id:secret` line, because a client id may
itself hold a `:` (RFC 6749 Appendix A.1) and a quoted string leaves no doubt about
surrounding spaces. Read when the configuration is (`check-config`, start, reload), like the
other secret files, through the `ConfigFiles` port; the secret is never in a repr or an error
message.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import PurePath
from typing import Final

from sidecar.core.config_files import file_text
from sidecar.core.credentials import basic_authorization
from sidecar.ports import ConfigFiles
from sidecar.settings import ConfigError

_CREDENTIAL_KEYS: Final = frozenset({"client_id", "client_secret"})


@dataclass(frozen=True, slots=True, repr=False)
class ClientCredentials:
    client_id: str
    client_secret: str

    @property
    def authorization(self) -> str:
        """RFC 6749 §2.3.1: each part form-urlencoded, then joined by `:` and base64."""
        return basic_authorization(self.client_id, self.client_secret)

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, client_secret=...)"


def read_credentials_file(path: str | PurePath, key: str, files: ConfigFiles) -> ClientCredentials:
    """The credentials in the TOML file at `path`; ConfigError naming `key` (the setting) and
    the problem - never the secret - when the file cannot be used."""
    try:
        raw = tomllib.loads(file_text(files, path))
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read {path}: {exc.strerror}"]) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        raise ConfigError([f"{key}: {path} is not a TOML file with client_id and "
                           "client_secret"]) from None
    problems = [f"{key}: {path}: unknown key {name!r}" for name in sorted(raw.keys() -
                                                                             _CREDENTIAL_KEYS)]
    for name in sorted(_CREDENTIAL_KEYS):
        value = raw.get(name)
        if not isinstance(value, str) or not value or not value.isprintable():
            problems.append(f"{key}: {path}: {name} must be a non-empty printable string")
    if problems:
        raise ConfigError(problems)
    return ClientCredentials(raw["client_id"], raw["client_secret"])
