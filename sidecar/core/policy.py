"""What the decision steps need from the configuration, built once at start-up.

Building it reads the files the configuration names (through the `ConfigFiles` port, never
opening one itself) and normalises URLs, so `check-config` builds it too: a configuration that
cannot serve is refused before it is deployed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from urllib.parse import urlsplit

from sidecar.core.attestation.config import AttestationPolicy
from sidecar.core.client_authentication.policy import ClientAuthPolicy
from sidecar.core.clients.loading import load_registry
from sidecar.core.clients.model import Registry
from sidecar.core.config_files import read_secrets
from sidecar.core.config_files import resolve as resolve_path
from sidecar.core.dpop.policy import DpopPolicy
from sidecar.core.htu import normalize_htu_targets
from sidecar.core.jwt_bearer import JwtBearerPolicy, load_issuers
from sidecar.core.mtls.parse import CertificateCache, certificate_cache
from sidecar.core.nonces import WindowedHmac
from sidecar.core.resource.policy import ResourcePolicy
from sidecar.core.store_failures import StoreFailurePolicy
from sidecar.ports import ConfigFiles
from sidecar.settings import (
    CertFormat,
    ConfigError,
    GrantsSettings,
    Settings,
    UpstreamTokenType,
)


@dataclass(frozen=True, slots=True)
class ProofPolicy:
    """What the DPoP proof step reads (`check_proof`)."""

    dpop: DpopPolicy
    required: bool  # dpop.required: a request without a proof is refused
    nonces: WindowedHmac | None
    nonce_required: bool


@dataclass(frozen=True, slots=True)
class AnswerPolicy:
    """What the review of the upstream's answer reads (sidecar/core/upstream_answer.py)."""

    upstream_token_type: UpstreamTokenType
    refresh_binding_ttl_seconds: int
    access_binding_ttl_seconds: int  # without expires_in in the token answer
    nonces: WindowedHmac | None  # a fresh DPoP-Nonce on every answer, when configured


@dataclass(frozen=True, slots=True)
class Policy:
    """Every step's policy; each step reads its own part (`proof`, `store`, `answer`, ...)."""

    cert_format: CertFormat
    grants: GrantsSettings
    proof: ProofPolicy
    par_htu_targets: frozenset[str]
    store: StoreFailurePolicy
    answer: AnswerPolicy
    registry: Registry | None  # None: no registry, the upstream authenticates clients
    client_auth: ClientAuthPolicy
    jwt_bearer: JwtBearerPolicy | None  # None: assertion grants are verified upstream
    attestation: AttestationPolicy | None  # None: attestation headers go to the upstream
    resource: ResourcePolicy | None  # None: no resource side ([resource] enabled = false)
    # The client certificates parsed so far (`mtls.parse`): the policy's own, built with it.
    certificates: CertificateCache = field(default_factory=certificate_cache, compare=False,
                                           repr=False)

    @property
    def dpop(self) -> DpopPolicy:
        return self.proof.dpop

    @property
    def nonces(self) -> WindowedHmac | None:
        return self.proof.nonces

    @property
    def nonce_required(self) -> bool:
        return self.proof.nonce_required

    @classmethod
    def from_settings(cls, settings: Settings, files: ConfigFiles) -> Policy:
        """Raises ConfigError naming the key when a file cannot be read or a URL is unusable.
        The files the settings name are read through `files`."""
        dpop = settings.dpop
        nonces = _nonces(settings, files)
        return cls(
            cert_format=settings.trust.client_cert_format,
            grants=settings.grants,
            proof=ProofPolicy(
                dpop=DpopPolicy.from_settings(dpop, settings.server.public_token_endpoint),
                required=dpop.required, nonces=nonces, nonce_required=dpop.nonce_required),
            par_htu_targets=_par_targets(settings),
            store=StoreFailurePolicy(fails_open=settings.store.failure_mode == "open",
                                     retry_after_seconds=settings.store.retry_after_seconds),
            answer=AnswerPolicy(
                upstream_token_type=dpop.upstream_token_type,
                refresh_binding_ttl_seconds=dpop.refresh_binding_ttl_seconds,
                access_binding_ttl_seconds=settings.bindings.default_ttl_seconds,
                nonces=nonces),
            registry=_registry(settings, files),
            client_auth=ClientAuthPolicy.from_settings(settings),
            jwt_bearer=_jwt_bearer(settings, files),
            attestation=_attestation(settings, files),
            resource=ResourcePolicy.from_settings(settings, files) if settings.resource.enabled
            else None,
        )


def resolve(settings: Settings, path: str) -> PurePath:
    """A path from the configuration: relative ones are relative to the config file."""
    return resolve_path(settings.base_dir, path)


def _registry(settings: Settings, files: ConfigFiles) -> Registry | None:
    if not settings.clients.registry_file:
        return None
    try:
        return load_registry(resolve(settings, settings.clients.registry_file), files)
    except ConfigError as exc:
        raise ConfigError([f"clients.registry_file: {p}" for p in exc.problems]) from exc


def _attestation(settings: Settings, files: ConfigFiles) -> AttestationPolicy | None:
    if not settings.attestation.enabled:
        return None
    return AttestationPolicy.from_settings(settings.attestation, issuer=settings.issuer,
                                           base_dir=settings.base_dir, files=files)


def _jwt_bearer(settings: Settings, files: ConfigFiles) -> JwtBearerPolicy | None:
    config = settings.grants.jwt_bearer
    if not config.issuers:
        return None
    issuers = load_issuers(list(config.issuers), PurePath(settings.base_dir), files)
    return JwtBearerPolicy.from_settings(settings, issuers)


def _nonces(settings: Settings, files: ConfigFiles) -> WindowedHmac | None:
    dpop = settings.dpop
    if not dpop.nonce_secret_file:
        if dpop.nonce_required:
            raise ConfigError(["dpop.nonce_required: needs dpop.nonce_secret_file"])
        return None
    try:
        secrets = read_secrets(files, resolve(settings, dpop.nonce_secret_file))
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
