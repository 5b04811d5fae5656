"""Typed application state: what the handlers read, and how it is swapped on reload."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from sidecar.adapters import open_store
from sidecar.adapters.client_secrets import CachingSecretVerifier
from sidecar.adapters.config_files import LOCAL_FILES
from sidecar.adapters.http_fetch import AiohttpFetcher
from sidecar.adapters.instrumented_store import InstrumentedStore
from sidecar.adapters.jwks import CachingJwksSource
from sidecar.core.decide import TokenDecider
from sidecar.core.par import ParDecider
from sidecar.core.policy import Policy, resolve
from sidecar.core.steps import StepContext
from sidecar.core.target import (
    ATTESTATION_CHALLENGE,
    INTROSPECTION,
    PAR,
    REVOCATION,
    TOKEN,
    GuardedPath,
    GuardedPaths,
)
from sidecar.core.upstream_answer import AnswerReview
from sidecar.gc_tuning import refreeze_after
from sidecar.http.admission import Admission
from sidecar.http.headers import ForwardRules, HeaderNames
from sidecar.http.metrics import Metrics
from sidecar.http.parse import ReadPolicy
from sidecar.http.proxy import Upstream, open_session, open_token_client
from sidecar.http.resource_check import ResourceRuntime
from sidecar.http.upstream_client import UpstreamClient
from sidecar.ports import Clock, ReplayStore
from sidecar.settings import ClientsSettings, ConfigError, Settings

CONTEXT_PREFIX = "X-Token-"
# The certificate, verification and subject headers front proxies write. From an untrusted
# peer they are dropped, the configured one or not: the upstream may read one of them itself
# (Keycloak looks for SSL_CLIENT_CERT by default). Compared folded (`_` as `-`, any case);
# a trailing `*` stands for a family of names. `trust.drop_headers` adds to the list.
KNOWN_CERT_HEADERS = HeaderNames.of((
    # nginx and HAProxy conventions: $ssl_client_cert, _verify, _s_dn, _i_dn, _serial, ...
    "X-SSL", "X-SSL-*", "X-Client-Cert*", "X-Client-Verify", "X-Client-DN", "X-Client-S-DN",
    "X-Client-I-DN",
    # Apache mod_ssl exported as headers: SSL_CLIENT_CERT, SSL_CLIENT_CERT_CHAIN_0, ...
    "SSL-Client-*",
    # IIS / Application Request Routing, ASP.NET Core's IIS integration, Azure
    "X-ARR-ClientCert", "X-ARR-SSL", "MS-ASPNETCORE-CLIENTCERT",
    # Envoy, Traefik, AWS ALB (-Leaf, -Subject, -Issuer, -Serial-Number, -Validity)
    "X-Forwarded-Client-Cert", "X-Forwarded-Tls-Client-Cert*", "X-Amzn-Mtls-Clientcert*",
    # RFC 9440 (Cloudflare, Google Cloud): Client-Cert, Client-Cert-Chain; Cloudflare's own
    "Client-Cert*", "Cf-Client-Cert*",
))
log = logging.getLogger("token_sidecar.runtime")


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a handler needs for one request. Immutable: a reload builds a new one and
    requests in flight finish with the one they started with."""

    settings: Settings
    read_policy: ReadPolicy
    env: StepContext
    # The decisions and the answer review, their steps bound to `env` once (not per request).
    decide_token: TokenDecider
    decide_par: ParDecider
    review_answer: AnswerReview
    upstream: Upstream
    forward_rules: ForwardRules  # which of the client's headers go upstream
    guarded: GuardedPaths  # the paths validated rather than passed through
    token_query_allowed: frozenset[str]
    resource: ResourceRuntime | None = None  # the resource side, when [resource] is enabled


@dataclass
class Resources:
    """What a Runtime holds open; shared between runtimes while the settings allow."""

    store: InstrumentedStore  # its warm_up opens the store's connections, for a store with any
    owns_store: bool
    session: aiohttp.ClientSession
    token_client: UpstreamClient  # the answers the sidecar reads; opened and closed with session
    clients: ClientResources


@dataclass
class ClientResources:
    """For client authentication: the JWKS cache and its fetcher, the verified-secret cache."""

    fetcher: AiohttpFetcher
    jwks: CachingJwksSource
    secrets: CachingSecretVerifier

    @classmethod
    def open(cls, settings: ClientsSettings, clock: Clock) -> ClientResources:
        fetcher = AiohttpFetcher(timeout_seconds=settings.jwks_fetch_timeout_seconds,
                                 max_bytes=settings.jwks_max_bytes)
        jwks = CachingJwksSource(fetcher, clock, ttl_seconds=settings.jwks_cache_ttl_seconds,
                                 min_refetch_seconds=settings.jwks_min_refetch_seconds,
                                 stale_if_error_seconds=settings.jwks_stale_if_error_seconds)
        secrets = CachingSecretVerifier(cache_size=settings.secret_cache_size,
                                 max_concurrent_hashes=settings.max_concurrent_hash_checks)
        return cls(fetcher, jwks, secrets)


@dataclass
class SidecarState:
    settings: Settings
    policy: Policy
    clock: Clock
    metrics: Metrics
    admission: Admission
    given_store: ReplayStore | None = None
    runtime: Runtime | None = None
    resources: Resources | None = None
    draining: bool = False
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def started(self) -> bool:
        return self.runtime is not None

    def start(self) -> None:
        self.resources = self._open(self.settings, None)
        self.runtime = build_runtime(self.settings, self.policy, self.resources, self.clock)
        if self.settings.clients.registry_file:
            watcher = asyncio.get_running_loop().create_task(self._watch_registry())
            self._closing.add(watcher)
            watcher.add_done_callback(self._closing.discard)

    async def warm_up(self) -> None:
        """Before the first request: the store's connections open (sidecar.adapters.redis)."""
        assert self.resources is not None
        await self.resources.store.warm_up()

    def reload_registry(self) -> bool:
        """Read the client registry again; a registry that does not validate is refused
        with a log line, and the one in force stays."""
        try:
            policy = Policy.from_settings(self.settings, LOCAL_FILES)
        except ConfigError as exc:
            self.metrics.config_reloads.labels("refused").inc()
            log.error("client registry reload refused, the previous registry stays in force: "
                      "%s", "; ".join(exc.problems))
            return False
        self.swap(self.settings, policy)
        self.metrics.config_reloads.labels("applied").inc()
        log.info("client registry reloaded")
        return True

    async def _watch_registry(self) -> None:
        """Poll the registry file. `os.stat` follows symlinks, so the swap of the `..data`
        link that Kubernetes does when a ConfigMap or Secret changes is seen too."""
        seen = _file_identity(self._registry_path())
        while True:
            await asyncio.sleep(self.settings.clients.watch_interval_seconds)
            current = _file_identity(self._registry_path())
            if current != seen:
                seen = current
                self.reload_registry()

    def _registry_path(self) -> Path:
        return Path(resolve(self.settings, self.settings.clients.registry_file))

    def swap(self, settings: Settings, policy: Policy) -> None:
        """Serve `settings` from now on. Resources whose settings did not change are kept;
        the others are closed once requests that started before the swap had time to end."""
        old = self.resources
        assert old is not None
        new = self._open(settings, old)
        self.settings, self.policy, self.resources = settings, policy, new
        self.runtime = build_runtime(settings, policy, new, self.clock)
        grace = settings.upstream.timeout_seconds + 1
        if new.session is not old.session:
            self._close_later(old.session.close, grace)
            self._close_later(old.token_client.close, grace)
        if new.store is not old.store:
            self._later(new.store.warm_up())
            if old.owns_store:
                self._close_later(old.store.close, grace)
        if new.clients is not old.clients:
            self._close_later(old.clients.fetcher.close, grace)
        # server.gc: what was replaced was frozen at startup; collected once closed, not now.
        self._later(refreeze_after(grace + 1))

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        if self.resources is not None:
            await self.resources.session.close()
            await self.resources.token_client.close()
            if self.resources.owns_store:
                await self.resources.store.close()
            await self.resources.clients.fetcher.close()

    def _open(self, settings: Settings, old: Resources | None) -> Resources:
        keep_store = old is not None and settings.store == self.settings.store
        keep_session = old is not None and settings.upstream == self.settings.upstream
        if old is not None and keep_store:
            store, owns = old.store, old.owns_store
        elif self.given_store is not None:
            store, owns = InstrumentedStore(self.given_store, self.metrics), False
        else:
            store, owns = InstrumentedStore(open_store(settings.store, self.clock),
                                            self.metrics), True
        session, token_client = (old.session, old.token_client) \
            if old is not None and keep_session \
            else (open_session(settings.upstream), open_token_client(settings.upstream))
        keep_clients = old is not None and settings.clients == self.settings.clients
        clients = old.clients if old is not None and keep_clients \
            else ClientResources.open(settings.clients, self.clock)
        return Resources(store, owns, session, token_client, clients)

    def _close_later(self, close: Callable[[], Awaitable[None]], delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            await close()

        self._later(later())

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def build_runtime(settings: Settings, policy: Policy, resources: Resources,
                  clock: Clock) -> Runtime:
    env = StepContext(policy, resources.store, clock, resources.clients.jwks,
                      resources.clients.secrets)
    return Runtime(
        settings=settings,
        read_policy=ReadPolicy.from_settings(settings),
        env=env,
        decide_token=TokenDecider.bind(env),
        decide_par=ParDecider.bind(env),
        review_answer=AnswerReview.of(env),
        upstream=Upstream(resources.session, resources.token_client, settings.upstream),
        forward_rules=forward_rules(settings),
        guarded=guarded_paths(settings, policy),
        token_query_allowed=frozenset(settings.server.token_query_allowed),
        resource=None if policy.resource is None
        else ResourceRuntime.build(settings, policy.resource, resources, clock),
    )


def guarded_paths(settings: Settings, policy: Policy) -> GuardedPaths:
    paths = [GuardedPath(TOKEN, settings.server.token_path),
             GuardedPath(PAR, settings.dpop.par_path),
             GuardedPath(INTROSPECTION, settings.introspection.path),
             GuardedPath(REVOCATION, settings.introspection.revocation_path)]
    attestation = policy.attestation
    if attestation is not None and attestation.challenges is not None:
        paths.append(GuardedPath(ATTESTATION_CHALLENGE, attestation.challenge_path))
    exact = settings.server.token_path_match == "exact"  # noqa: S105 - a mode
    return GuardedPaths(paths, exact=exact)


# The request headers the sidecar reads by name (the certificate headers it reads in any
# spelling), and those it writes itself on the way upstream (see `headers.ForwardRules`).
SIDECAR_READS = ("Authorization", "DPoP", "OAuth-Client-Attestation",
                 "OAuth-Client-Attestation-PoP", "Content-Type", "Content-Encoding")
SIDECAR_WRITES = ("X-Request-Id",)


def forward_rules(settings: Settings) -> ForwardRules:
    trust = settings.trust
    configured = tuple(h for h in (trust.client_cert_header, trust.client_cert_chain_header) if h)
    untrusted = KNOWN_CERT_HEADERS | HeaderNames.of(configured) \
        | HeaderNames.of(trust.drop_headers)
    return ForwardRules.build(CONTEXT_PREFIX, untrusted, reads=SIDECAR_READS,
                              reads_any_spelling=configured, writes=SIDECAR_WRITES)


STATE = web.AppKey("state", SidecarState)
# The token application, held by the applications that serve its state on listeners of their
# own (the admin port, the resource check listener, the decision API).
TOKEN_APP = web.AppKey("token_app", web.Application)
# Set on the admin application (sidecar/http/admin.py): its listener is bounded by
# server.admin_max_connections and its connections are not counted as the token port's.
ADMIN_APP = web.AppKey("admin_app", bool)
