"""Typed configuration: TOML file, environment overrides, validation that names the key.

Each `[section]` of the file is a frozen dataclass; the field names are the config keys
that users and integrations rely on (README "Configuration"). Every scalar or list key can be
overridden by `TOKEN_SIDECAR_<SECTION>_<KEY>` (lists as a JSON array or comma-separated).
Validation collects every problem, each prefixed with its dotted key, instead of stopping at
the first, so `check-config` can print them all.

The package: `keys` (`key()`, `ConfigError`, the mode types), `checks` (the value checks),
one module per group of sections (`server`, `trust_store`, `dpop`, `clients`, `resource`),
`sections` (`Settings`, all of them), `loading` (TOML, environment overrides, paths),
`environment` (the variables' names), `cross_checks` (combinations of keys), `secret_files`.
Importers use the names re-exported here.
"""

from sidecar.settings.clients import (
    ASSERTION_ALGORITHMS,
    AttestationSettings,
    ClientsSettings,
    GrantsSettings,
    JwtBearerSettings,
)
from sidecar.settings.dpop import BindingsSettings, DpopSettings
from sidecar.settings.environment import env_name, env_variables
from sidecar.settings.keys import (
    CERT_FORMATS,
    DPOP_ALGORITHMS,
    ENV_PREFIX,
    GRANT_TYPES,
    REQUIRED,
    AssertionAudiences,
    CertFormat,
    Check,
    ConfigError,
    EventLoop,
    FailureMode,
    GcMode,
    LogFormat,
    LogLevel,
    PasswordGrant,
    PathMatch,
    UnknownClients,
    UpstreamTokenType,
    WhenFull,
    key,
)
from sidecar.settings.loading import load_settings, resolve_paths, settings_from_mapping
from sidecar.settings.resource import ResourceSettings
from sidecar.settings.secret_files import read_secret_lines, secret_lines
from sidecar.settings.sections import SECTIONS, Settings
from sidecar.settings.server import (
    ApiSettings,
    IntrospectionSettings,
    LoggingSettings,
    MetadataSettings,
    MetricsSettings,
    ServerSettings,
    UpstreamSettings,
)
from sidecar.settings.trust_store import StoreSettings, TrustSettings

__all__ = [
    "ASSERTION_ALGORITHMS", "CERT_FORMATS", "DPOP_ALGORITHMS", "ENV_PREFIX", "GRANT_TYPES",
    "REQUIRED", "SECTIONS", "ApiSettings", "AssertionAudiences", "AttestationSettings",
    "BindingsSettings", "CertFormat", "Check", "ClientsSettings", "ConfigError", "DpopSettings",
    "EventLoop", "FailureMode", "GcMode", "GrantsSettings", "IntrospectionSettings",
    "JwtBearerSettings", "LogFormat", "LogLevel", "LoggingSettings", "MetadataSettings",
    "MetricsSettings", "PasswordGrant", "PathMatch", "ResourceSettings", "ServerSettings",
    "Settings", "StoreSettings", "TrustSettings", "UnknownClients", "UpstreamSettings",
    "UpstreamTokenType", "WhenFull", "env_name", "env_variables", "key", "load_settings",
    "read_secret_lines", "resolve_paths", "secret_lines", "settings_from_mapping",
]
