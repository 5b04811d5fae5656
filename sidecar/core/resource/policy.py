"""What the resource-side check reads from the configuration, built once at start-up (and
by `check-config`): the origin proofs are signed for, the DPoP rules shared with the token
endpoint, the resource nonces, and what an unbound or under-scoped token gets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from sidecar.core.config_files import read_secrets, resolve
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.htu import normalize_htu
from sidecar.core.mtls.parse import CertificateCache, certificate_cache
from sidecar.core.nonces import WindowedHmac
from sidecar.core.resource.credentials import ClientCredentials, read_credentials_file
from sidecar.ports import ConfigFiles
from sidecar.settings import ConfigError, Settings

# Mixed into the nonce MAC (sidecar.core.nonces): a token-endpoint nonce is no resource
# nonce, even when both come from the shared dpop.nonce_secret_file.
NONCE_PURPOSE: Final = "dpop-nonce-resource"


@dataclass(frozen=True, slots=True)
class ResourcePolicy:
    origin: str  # resource.public_origin, normalised, without the trailing "/"
    dpop: DpopPolicy
    nonces: WindowedHmac | None  # set when resource.nonce_required
    bearer_allowed: bool
    required_scopes: tuple[str, ...]
    cert_format: str
    retry_after_seconds: int
    # With resource.introspection_url: the resource server's own, read from
    # resource.introspection_credentials_file now, so that check-config reports a bad file.
    introspection_credentials: ClientCredentials | None = None
    # The client certificates parsed so far (`mtls.parse`): the policy's own, built with it.
    certificates: CertificateCache = field(default_factory=certificate_cache, compare=False,
                                           repr=False)

    @property
    def algs(self) -> str:
        """The `algs` of the DPoP challenge (RFC 9449 §7.1)."""
        return " ".join(sorted(self.dpop.algorithms))

    @property
    def nonce_required(self) -> bool:
        return self.nonces is not None

    @classmethod
    def from_settings(cls, settings: Settings, files: ConfigFiles) -> ResourcePolicy:
        """Raises ConfigError naming the key (unusable origin, unreadable nonce secret or
        introspection credentials). The files are read through `files`."""
        resource = settings.resource
        origin = normalize_htu(resource.public_origin) if resource.public_origin else None
        if resource.public_origin and origin is None:
            raise ConfigError([f"resource.public_origin: not usable as a DPoP htu: "
                               f"{resource.public_origin!r}"])
        return cls(
            origin=(origin or "").rstrip("/"),
            dpop=DpopPolicy.from_settings(settings.dpop, settings.server.public_token_endpoint),
            nonces=_nonces(settings, files) if resource.nonce_required else None,
            bearer_allowed=resource.bearer == "allow",
            required_scopes=resource.required_scopes,
            cert_format=settings.trust.client_cert_format,
            retry_after_seconds=settings.store.retry_after_seconds,
            introspection_credentials=read_credentials_file(
                resolve(settings.base_dir, resource.introspection_credentials_file),
                "resource.introspection_credentials_file", files)
            if resource.introspection_url else None,
        )


def _nonces(settings: Settings, files: ConfigFiles) -> WindowedHmac:
    key = "resource.nonce_secret_file" if settings.resource.nonce_secret_file \
        else "dpop.nonce_secret_file"
    path = settings.resource.nonce_secret_file or settings.dpop.nonce_secret_file
    if not path:
        raise ConfigError(["resource.nonce_required: needs resource.nonce_secret_file or "
                           "dpop.nonce_secret_file"])
    try:
        # Relative to the configuration file, as sidecar.core.policy.resolve does.
        secrets = read_secrets(files, resolve(settings.base_dir, path))
    except OSError as exc:
        raise ConfigError([f"{key}: cannot read: {exc.strerror}"]) from exc
    except ConfigError as exc:
        raise ConfigError([f"{key}: {p}" for p in exc.problems]) from exc
    return WindowedHmac(secrets, settings.dpop.nonce_step_seconds,
                        settings.dpop.nonce_window_steps, purpose=NONCE_PURPOSE)
