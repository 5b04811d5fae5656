"""`Settings`, every section together, and `SECTIONS`, the tables a file may have."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sidecar.settings.clients import (
    AttestationSettings,
    ClientsSettings,
    GrantsSettings,
)
from sidecar.settings.dpop import BindingsSettings, DpopSettings
from sidecar.settings.resource import ResourceSettings
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    server: ServerSettings
    upstream: UpstreamSettings
    trust: TrustSettings = field(default_factory=lambda: _defaults(TrustSettings))
    store: StoreSettings = field(default_factory=lambda: _defaults(StoreSettings))
    dpop: DpopSettings = field(default_factory=lambda: _defaults(DpopSettings))
    clients: ClientsSettings = field(default_factory=lambda: _defaults(ClientsSettings))
    grants: GrantsSettings = field(default_factory=lambda: _defaults(GrantsSettings))
    logging: LoggingSettings = field(default_factory=lambda: _defaults(LoggingSettings))
    metrics: MetricsSettings = field(default_factory=lambda: _defaults(MetricsSettings))
    bindings: BindingsSettings = field(default_factory=lambda: _defaults(BindingsSettings))
    introspection: IntrospectionSettings = field(
        default_factory=lambda: _defaults(IntrospectionSettings))
    metadata: MetadataSettings = field(default_factory=lambda: _defaults(MetadataSettings))
    attestation: AttestationSettings = field(
        default_factory=lambda: _defaults(AttestationSettings))
    resource: ResourceSettings = field(default_factory=lambda: _defaults(ResourceSettings))
    api: ApiSettings = field(default_factory=lambda: _defaults(ApiSettings))
    # Not a key: the directory of the file the settings came from; relative paths in it
    # are resolved against this directory.
    base_dir: str = "."

    @property
    def issuer(self) -> str:
        if self.server.issuer:
            return self.server.issuer
        parts = urlsplit(self.server.public_token_endpoint)
        return f"{parts.scheme}://{parts.netloc}"


SECTIONS: dict[str, type[Any]] = {
    f.name: typing.get_type_hints(Settings)[f.name] for f in dataclasses.fields(Settings)
    if f.name != "base_dir"
}


def _defaults(cls: type[Any]) -> Any:
    return cls()
