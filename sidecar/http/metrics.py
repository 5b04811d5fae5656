"""Prometheus metrics (`token_sidecar_*`), one registry per application.

Label values are bounded: actions, grant types and result codes are closed sets the code
defines, status classes are `2xx`..`5xx`. Client ids are a label only when
`metrics.client_id_label` is on (an operator who knows the registry is small), and then only
ids of the client registry; any other id is `other`. No label takes a value the client chose.
With `server.workers > 1` the workers write to `PROMETHEUS_MULTIPROC_DIR` and every scrape
sums them (prometheus-client multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    multiprocess,
)

from sidecar import __version__
from sidecar.http.local_metrics import LocalCollector, LocalCounter, LocalGauge, LocalHistogram
from sidecar.settings import GRANT_TYPES

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_KNOWN_GRANTS = frozenset(GRANT_TYPES)
T = TypeVar("T")
_MAX_CACHED_CHILDREN = 4096  # label sets are bounded; this bounds the cache all the same
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@dataclass
class Metrics:
    client_id_label: bool = False
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # One process: the local metrics (sidecar/http/local_metrics.py, a fast path); with
        # workers, prometheus-client's own, which its multiprocess mode sums.
        self._local = None if multiprocess_dir() else LocalCollector()
        if self._local is not None:
            r.register(self._local)
        self._token_requests(r)
        self._store(r)
        self._load(r)
        self._bindings(r)
        self._process(r)
        self._other_doors(r)
        self.build_info = Info("token_sidecar_build", "The running version.", registry=r)
        self.build_info.info({"version": __version__})
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _counter(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 registry: CollectorRegistry) -> Any:
        if self._local is None:
            return Counter(name, documentation, labelnames, registry=registry)
        return LocalCounter(name, documentation, labelnames, collector=self._local)

    def _gauge(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
               registry: CollectorRegistry, multiprocess_mode: str) -> Any:
        if self._local is None:
            return Gauge(name, documentation, labelnames, registry=registry,
                         multiprocess_mode=multiprocess_mode)  # type: ignore[arg-type]
        return LocalGauge(name, documentation, labelnames, collector=self._local)

    def _histogram(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                   buckets: Sequence[float], registry: CollectorRegistry) -> Any:
        if self._local is None:
            return Histogram(name, documentation, labelnames, buckets=buckets,
                             registry=registry)
        return LocalHistogram(name, documentation, labelnames, buckets=buckets,
                              collector=self._local)

    def _token_requests(self, r: CollectorRegistry) -> None:
        """Token requests, the upstream's answers, DPoP proofs and replays."""
        request_labels = ["action", "grant_type", "result_code"]
        if self.client_id_label:
            request_labels.append("client_id")
        self.requests = self._counter("token_sidecar_requests", "Token requests by outcome.",
                                request_labels, registry=r)
        self.request_duration = self._histogram(
            "token_sidecar_request_duration_seconds", "Time from request to answer.",
            ["action"], buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_duration = self._histogram(
            "token_sidecar_upstream_duration_seconds", "Time the upstream took to answer.",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_responses = self._counter(
            "token_sidecar_upstream_responses", "Upstream answers by status class.",
            ["status_class"], registry=r)
        self.dpop_proofs = self._counter("token_sidecar_dpop_proofs", "DPoP proofs by outcome.",
                                   ["outcome"], registry=r)
        self.replays_rejected = self._counter("token_sidecar_replays_rejected",
                                        "Replayed single-use values refused.", ["kind"],
                                        registry=r)
        self.replay_checks_skipped = self._counter(
            "token_sidecar_replay_checks_skipped",
            "Requests forwarded without a replay check (store down, failure_mode open).",
            registry=r)

    def _store(self, r: CollectorRegistry) -> None:
        """The store's round trips, failures and evictions."""
        self.store_errors = self._counter(
            "token_sidecar_store_errors", "Store operations that failed.", ["operation"],
            registry=r)
        self.store_evictions = self._counter(
            "token_sidecar_store_evictions",
            "Unexpired entries a full memory store dropped (their replay protection ended "
            "early).", registry=r)
        self.store_duration = self._histogram(
            "token_sidecar_store_operation_duration_seconds", "Store round trips.",
            ["operation"], buckets=_STORE_BUCKETS, registry=r)

    def _load(self, r: CollectorRegistry) -> None:
        """Admission: shed, queued and in-flight requests."""
        self.requests_shed = self._counter(
            "token_sidecar_requests_shed",
            "Token requests answered 503 without being handled: the process was at "
            "server.max_in_flight and its queue full (queue_full) or too slow (queue_timeout).",
            ["reason"], registry=r)
        self.queued = self._gauge("token_sidecar_queued_requests",
                            "Token requests waiting for their turn (server.max_in_flight).",
                            registry=r, multiprocess_mode="livesum")
        self.in_flight = self._gauge("token_sidecar_in_flight_requests",
                               "Token requests being handled.", registry=r,
                               multiprocess_mode="livesum")

    def _bindings(self, r: CollectorRegistry) -> None:
        """Nonces, token types, access bindings, introspection and metadata."""
        self.nonces_issued = self._counter("token_sidecar_dpop_nonces_issued",
                                     "DPoP-Nonce values handed out.", registry=r)
        self.upstream_token_type = self._counter(
            "token_sidecar_upstream_token_type_mismatches",
            "Upstream answers to DPoP requests whose token_type was not DPoP, by what was done.",
            ["handling"], registry=r)
        self.access_bindings = self._counter(
            "token_sidecar_access_bindings",
            "Access tokens bound to a DPoP key or certificate: recorded, skipped (store down, "
            "failure_mode open), deleted on revocation.", ["outcome"], registry=r)
        self.introspections = self._counter(
            "token_sidecar_introspections",
            "Introspection answers through the sidecar, by what was done to them.",
            ["outcome"], registry=r)
        self.metadata_documents = self._counter(
            "token_sidecar_metadata_documents",
            "Metadata documents passed through, by whether fields were written in.",
            ["outcome"], registry=r)

    def _process(self, r: CollectorRegistry) -> None:
        """Reloads, refused targets and the connections of the guarded listeners."""
        self.config_reloads = self._counter("token_sidecar_config_reloads",
                                      "Configuration reloads by outcome.", ["outcome"],
                                      registry=r)
        self.targets_refused = self._counter(
            "token_sidecar_request_targets_refused",
            "Requests refused for their target (path or query) before any check, by reason.",
            ["result_code"], registry=r)
        self.connections_closed = self._counter(
            "token_sidecar_connections_closed",
            "Token-port connections the sidecar closed: a timeout passed, or max_connections.",
            ["reason"], registry=r)
        self.open_connections = self._gauge("token_sidecar_open_connections",
                                      "Connections open on the token port.", registry=r,
                                      multiprocess_mode="livesum")

    def _other_doors(self, r: CollectorRegistry) -> None:
        """The resource side's checks and the decision API's calls."""
        self.resource_requests = self._counter(
            "token_sidecar_resource_requests",
            "API calls checked by the resource side (README \"The resource side\"), by "
            "outcome.", ["result_code"], registry=r)
        self.api_token_calls = self._counter(
            "token_sidecar_api_token_calls",
            "Decision-API token calls (README \"Calling instead of proxying\"), by action "
            "and result code; calls refused before a decision have the action \"\".",
            ["action", "result_code"], registry=r)


    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: prometheus-client validates and locks on
        every `labels()` call, a cost each token request would pay several times."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = metric.labels(*labels)
            if len(self._children) < _MAX_CACHED_CHILDREN:
                self._children[key] = found
        return found

    def observe_request(self, *, action: str, grant_type: str, result_code: str,
                        client_id: str, client_registered: bool, duration: float) -> None:
        """`client_registered`: `client_id` is in the client registry. Any other id came from
        the request alone and is labelled `other`, so a client cannot mint series."""
        grant = grant_type if grant_type in _KNOWN_GRANTS else ("" if not grant_type else "other")
        labels = [action, grant, result_code]
        if self.client_id_label:
            labels.append(client_id if client_registered else ("" if not client_id else "other"))
        self.child(self.requests, *labels).inc()
        self.child(self.request_duration, action).observe(duration)

    def count_shed(self, reason: str) -> None:
        self.child(self.requests_shed, reason).inc()

    def observe_upstream(self, status: int, duration: float) -> None:
        self.child(self.upstream_responses, _STATUS_CLASSES.get(status // 100, "other")).inc()
        self.upstream_duration.observe(duration)

    def exposition(self) -> bytes:
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


    # The store's instruments (sidecar.adapters.instrumented_store.StoreInstruments).

    def store_operation(self, operation: str, seconds: float) -> None:
        self.child(self.store_duration, operation).observe(seconds)

    def store_failed(self, operation: str) -> None:
        self.child(self.store_errors, operation).inc()

    def replay_refused(self, kind: str) -> None:
        self.child(self.replays_rejected, kind).inc()

    def store_evicted(self, count: int) -> None:
        self.store_evictions.inc(count)
