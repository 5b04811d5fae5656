"""The `[attestation]` section and its `[[attestation.attesters]]`: the policy, the trusted
attesters and their keys, the challenge secrets (draft-ietf-oauth-attestation-based-client-auth
§6, §10.8)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Final

from sidecar.core.clients.tables import TableReader, read_table_array
from sidecar.core.config_files import read_secrets, resolve
from sidecar.core.jose.key_sets import (
    ASYMMETRIC_ALGORITHMS,
    JwkEntry,
)
from sidecar.core.jose.keys import KeyCache
from sidecar.core.nonces import WindowedHmac
from sidecar.core.syntax import VSCHAR
from sidecar.ports import ConfigFiles
from sidecar.settings import AttestationSettings, ConfigError

ATTEST_JWT_CLIENT_AUTH: Final = "attest_jwt_client_auth"
ATTEST_JWT_CLIENT_AUTH_DPOP: Final = "attest_jwt_client_auth_dpop"
ATTESTATION_METHODS: Final = frozenset({ATTEST_JWT_CLIENT_AUTH, ATTEST_JWT_CLIENT_AUTH_DPOP})
ATTESTATION_POP_JTI: Final = "attestation_pop"  # store kind
REFRESH_BINDING_KIND: Final = "att"  # refresh binding "att:<instance jkt>"
CHALLENGE_HEADER: Final = "OAuth-Client-Attestation-Challenge"
CHALLENGE_PURPOSE: Final = "attestation-challenge"
ATTESTATION_TYP: Final = "oauth-client-attestation+jwt"
POP_TYP: Final = "oauth-client-attestation-pop+jwt"
LEGACY_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-client-attestation"
ATTESTER_KEYS: Final = frozenset({"issuer", "jwks", "jwks_file", "jwks_uri", "clients",
                                  "algorithms"})
DEFAULT_ALGORITHMS: Final = ("ES256", "EdDSA", "Ed25519", "PS256", "RS256")


@dataclass(frozen=True, slots=True)
class Attester:
    issuer: str
    clients: frozenset[str]
    jwks: tuple[JwkEntry, ...] = ()
    jwks_uri: str | None = None
    algorithms: frozenset[str] = frozenset(ASYMMETRIC_ALGORITHMS)


@dataclass(frozen=True, slots=True)
class AttestationPolicy:
    issuer: str  # the PoP `aud` (RFC 8414 issuer identifier)
    attesters: tuple[Attester, ...]
    challenges: WindowedHmac | None
    challenge_required: bool = False
    challenge_path: str = "/attestation-challenge"
    algorithms: frozenset[str] = frozenset(DEFAULT_ALGORITHMS)
    pop_iat_max_age_seconds: int = 60
    pop_iat_max_future_seconds: int = 10
    leeway_seconds: int = 60
    max_age_seconds: int = 0
    max_jti_length: int = 256
    dpop_combined: bool = True
    accept_legacy_client_assertion: bool = False
    # The instance keys (`cnf.jwk`) parsed so far: the same instance sends the same key.
    keys: KeyCache = field(default_factory=lambda: KeyCache(4096), compare=False, repr=False)
    _by_client: Mapping[str, tuple[Attester, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_client: dict[str, list[Attester]] = {}
        for attester in self.attesters:
            for client_id in attester.clients:
                by_client.setdefault(client_id, []).append(attester)
        object.__setattr__(self, "_by_client", {k: tuple(v) for k, v in by_client.items()})

    @classmethod
    def from_settings(cls, config: AttestationSettings, *, issuer: str,
                      base_dir: str | PurePath, files: ConfigFiles) -> AttestationPolicy:
        """Check the section, load the attesters, read the challenge secrets. Raises
        ConfigError naming `attestation.<key>` (or `attestation.attesters[i].<key>`)."""
        problems = _config_problems(config)
        challenges = None
        if config.challenge_secret_file:
            try:
                challenges = _challenges(config, PurePath(base_dir), files)
            except ConfigError as exc:
                problems.extend(exc.problems)
        try:
            attesters = load_attesters(list(config.attesters), PurePath(base_dir), files)
        except ConfigError as exc:
            problems.extend(exc.problems)
            attesters = ()
        if problems:
            raise ConfigError(problems)
        return cls(issuer=issuer, attesters=attesters, challenges=challenges,
                   challenge_required=config.challenge_required,
                   challenge_path=config.challenge_path,
                   algorithms=frozenset(config.algorithms),
                   pop_iat_max_age_seconds=config.pop_iat_max_age_seconds,
                   pop_iat_max_future_seconds=config.pop_iat_max_future_seconds,
                   leeway_seconds=config.leeway_seconds, max_age_seconds=config.max_age_seconds,
                   max_jti_length=config.max_jti_length, dpop_combined=config.dpop_combined,
                   accept_legacy_client_assertion=config.accept_legacy_client_assertion)

    def attesters_for(self, client_id: str) -> tuple[Attester, ...]:
        return self._by_client.get(client_id, ())

    @property
    def jwks_uris(self) -> frozenset[str]:
        return frozenset(a.jwks_uri for a in self.attesters if a.jwks_uri)

    @property
    def pop_replay_ttl_seconds(self) -> float:
        """How long a PoP `jti` is remembered: the whole `iat` window, plus the rounding of
        `iat` to seconds (draft §10.7: the window is what bounds the seen-values list)."""
        return float(self.pop_iat_max_age_seconds + self.pop_iat_max_future_seconds + 1)


def _config_problems(config: AttestationSettings) -> list[str]:
    problems: list[str] = []
    unknown = [a for a in config.algorithms if a not in ASYMMETRIC_ALGORITHMS]
    if unknown or not config.algorithms:
        problems.append(f"attestation.algorithms: unsupported {unknown!r}; allowed: "
                        f"{', '.join(ASYMMETRIC_ALGORITHMS)} (asymmetric only, §5.1 rule 2)")
    if config.challenge_required and not config.challenge_secret_file:
        problems.append("attestation.challenge_required: needs attestation.challenge_secret_file")
    if not config.challenge_path.startswith("/"):
        problems.append(f"attestation.challenge_path: expected a path starting with '/', got "
                        f"{config.challenge_path!r}")
    for name in ("challenge_step_seconds", "max_jti_length"):
        if getattr(config, name) <= 0:
            problems.append(f"attestation.{name}: must be greater than 0")
    for name in ("challenge_window_steps", "pop_iat_max_age_seconds",
                 "pop_iat_max_future_seconds", "leeway_seconds", "max_age_seconds"):
        if getattr(config, name) < 0:
            problems.append(f"attestation.{name}: must not be negative")
    if not config.attesters:
        problems.append("attestation.attesters: at least one [[attestation.attesters]] is needed")
    return problems


def _challenges(config: AttestationSettings, base_dir: PurePath,
                files: ConfigFiles) -> WindowedHmac:
    path = resolve(base_dir, config.challenge_secret_file)
    try:
        secrets = read_secrets(files, path)
    except OSError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: cannot read: {exc.strerror}"]) \
            from exc
    except ConfigError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: {p}" for p in exc.problems]) \
            from exc
    try:
        return WindowedHmac(secrets, config.challenge_step_seconds,
                            config.challenge_window_steps, purpose=CHALLENGE_PURPOSE)
    except ValueError as exc:
        raise ConfigError([f"attestation.challenge_secret_file: {exc}"]) from exc


def load_attesters(raw: object, base_dir: PurePath, files: ConfigFiles,
                   prefix: str = "attestation.attesters") -> tuple[Attester, ...]:
    """The trusted attesters of `[[attestation.attesters]]`; key files are read now. Raises
    ConfigError naming every problem as `<prefix>[<i>].<key>`."""
    return read_table_array(raw, base_dir, files, prefix, build=_attester,
                            identity=lambda item: item.issuer, identity_key="issuer")


def _attester(reader: TableReader) -> Attester | None:
    reader.unknown_keys(ATTESTER_KEYS)
    issuer = reader.string("issuer", required=True)
    if issuer is not None and not VSCHAR.fullmatch(issuer):
        reader.problem("issuer", "must be printable ASCII (it is sent upstream in a header)")
    sources = [key for key in ("jwks", "jwks_file", "jwks_uri") if reader.has(key)]
    if len(sources) != 1:
        reader.problem(sources[1] if len(sources) > 1 else "jwks_file",
                       "needs exactly one of jwks, jwks_file, jwks_uri")
    jwks = reader.jwks() if reader.has("jwks") or reader.has("jwks_file") else ()
    jwks_uri = reader.http_url("jwks_uri")
    clients = reader.strings("clients")
    if clients is None and not reader.has("clients"):
        reader.problem("clients", "required: the client ids this attester may attest")
    elif clients is not None and (not clients or not all(VSCHAR.fullmatch(c) for c in clients)):
        reader.problem("clients", "expected a non-empty list of client ids (RFC 6749 A.1)")
    algorithms = reader.algorithms("algorithms", ASYMMETRIC_ALGORITHMS)
    if not reader.ok or issuer is None or clients is None:
        return None
    return Attester(issuer=issuer, clients=frozenset(clients), jwks=jwks, jwks_uri=jwks_uri,
                    algorithms=frozenset(algorithms or ASYMMETRIC_ALGORITHMS))
