"""What the decision steps need from the configuration, built once at start-up.

Building it reads the secret files and normalises URLs, so `check-config` builds it too: a
configuration that cannot serve is refused before it is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.core.dpop import DpopPolicy, normalize_htu_targets
from sidecar.core.nonces import WindowedHmac
from sidecar.settings import ConfigError, GrantsSettings, Settings, read_secret_lines


@dataclass(frozen=True, slots=True)
class Policy:
    cert_format: str
    grants: GrantsSettings
    dpop: DpopPolicy
    dpop_required: bool
    nonces: WindowedHmac | None
    nonce_required: bool
    par_htu_targets: frozenset[str]
    refresh_binding_ttl_seconds: int
    upstream_token_type: str  # pass | rewrite | require
    store_fails_open: bool
    retry_after_seconds: int

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        """Raises ConfigError naming the key when a file cannot be read or a URL is unusable."""
        dpop = settings.dpop
        return cls(
            cert_format=settings.trust.client_cert_format,
            grants=settings.grants,
            dpop=DpopPolicy.from_settings(dpop, settings.server.public_token_endpoint),
            dpop_required=dpop.required,
            nonces=_nonces(settings),
            nonce_required=dpop.nonce_required,
            par_htu_targets=_par_targets(settings),
            refresh_binding_ttl_seconds=dpop.refresh_binding_ttl_seconds,
            upstream_token_type=dpop.upstream_token_type,
            store_fails_open=settings.store.failure_mode == "open",
            retry_after_seconds=settings.store.retry_after_seconds,
        )


def _nonces(settings: Settings) -> WindowedHmac | None:
    dpop = settings.dpop
    if not dpop.nonce_secret_file:
        if dpop.nonce_required:
            raise ConfigError(["dpop.nonce_required: needs dpop.nonce_secret_file"])
        return None
    try:
        secrets = read_secret_lines(dpop.nonce_secret_file)
    except OSError as exc:
        raise ConfigError([f"dpop.nonce_secret_file: cannot read: {exc.strerror}"]) from exc
    except ConfigError as exc:
        raise ConfigError([f"dpop.nonce_secret_file: {p}" for p in exc.problems]) from exc
    return WindowedHmac(secrets, dpop.nonce_step_seconds, dpop.nonce_window_steps,
                        purpose="dpop-nonce")


def _par_targets(settings: Settings) -> frozenset[str]:
    """The PAR endpoint's public URL: the token endpoint's origin and `dpop.par_path`."""
    if not settings.dpop.par_path:
        return frozenset()
    parts = urlsplit(settings.server.public_token_endpoint)
    try:
        return normalize_htu_targets([f"{parts.scheme}://{parts.netloc}{settings.dpop.par_path}"])
    except ValueError as exc:
        raise ConfigError([f"dpop.par_path: not usable as a DPoP htu: {exc}"]) from exc
