"""sidecar/http/local_metrics.py: what a scrape reads from the local metrics is what it reads
from prometheus-client's own after the same updates, line for line (the `_created`
timestamps aside), so dashboards and alerts see no difference; with workers, prometheus-
client's own metrics (its multiprocess mode) are used instead."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from sidecar.http.local_metrics import (
    LocalCollector,
    LocalCounter,
    LocalGauge,
    LocalHistogram,
)
from sidecar.http.metrics import Metrics

BUCKETS = (0.001, 0.0025, 0.01, 0.1, 1.0)


def exposition(registry: CollectorRegistry) -> str:
    text = generate_latest(registry).decode()
    return re.sub(r"(_created(?:\{[^}]*\})?) \S+", r"\1 <time>", text)


# (key, kind, name, help, label names): each made twice, by prometheus-client and locally.
SPECS: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("requests", "counter", "t_requests", "Requests.", ("action", "code")),
    ("skipped", "counter", "t_skipped_total", "Skipped.", ()),
    ("duration", "histogram", "t_duration_seconds", "Time.", ("action",)),
    ("upstream", "histogram", "t_upstream_seconds", "Upstream.", ()),
    ("in_flight", "gauge", "t_in_flight", "In flight.", ()),
    ("open", "gauge", "t_open", "Open by kind.", ("kind",)),
)


def prometheus_metric(kind: str, name: str, doc: str, labels: tuple[str, ...],
           registry: CollectorRegistry) -> Any:
    if kind == "histogram":
        return Histogram(name, doc, labels, buckets=BUCKETS, registry=registry)
    return (Counter if kind == "counter" else Gauge)(name, doc, labels, registry=registry)


def local_metric(kind: str, name: str, doc: str, labels: tuple[str, ...],
         collector: LocalCollector) -> Any:
    if kind == "histogram":
        return LocalHistogram(name, doc, labels, buckets=BUCKETS, collector=collector)
    made = LocalCounter if kind == "counter" else LocalGauge
    return made(name, doc, labels, collector=collector)


def both() -> tuple[dict[str, Any], CollectorRegistry, dict[str, Any], CollectorRegistry]:
    reference_registry, local_registry = CollectorRegistry(), CollectorRegistry()
    local = LocalCollector()
    local_registry.register(local)
    reference = {key: prometheus_metric(kind, name, doc, labels, reference_registry)
                 for key, kind, name, doc, labels in SPECS}
    mine = {key: local_metric(kind, name, doc, labels, local)
            for key, kind, name, doc, labels in SPECS}
    return reference, reference_registry, mine, local_registry


def update(metrics: dict[str, Any]) -> None:
    metrics["requests"].labels("OK", "token.ok").inc()
    metrics["requests"].labels("OK", "token.ok").inc(2)
    metrics["requests"].labels("BAD_REQUEST", "grant.unsupported").inc()
    metrics["requests"].labels("OK", "token.never")  # asked for, never counted: a 0 line
    metrics["skipped"].inc()
    # On a bound, between bounds, below the first, past the last (+Inf), and zero.
    for seconds in (0.001, 0.002, 0.0001, 0.5, 3.0, 0.0, 1.0):
        metrics["duration"].labels("OK").observe(seconds)
    metrics["duration"].labels("REFUSED").observe(0.05)
    metrics["upstream"].observe(0.0025)
    metrics["in_flight"].inc()
    metrics["in_flight"].inc()
    metrics["in_flight"].dec()
    metrics["open"].labels("idle").set(7)


def test_a_scrape_reads_the_same_lines_as_from_prometheus_clients_own_metrics() -> None:
    reference, theirs, mine, ours = both()
    assert exposition(ours) == exposition(theirs)  # before any update too
    update(reference)
    update(mine)
    assert exposition(ours) == exposition(theirs)
    assert 't_requests_total{action="OK",code="token.ok"} 3.0' in exposition(ours)
    assert 't_duration_seconds_bucket{action="OK",le="0.001"} 3.0' in exposition(ours)


def test_misuse_is_refused_as_prometheus_client_refuses_it() -> None:
    _, _, mine, _ = both()
    with pytest.raises(ValueError, match="label"):
        mine["requests"].labels("OK")
    with pytest.raises(ValueError, match="non-negative"):
        mine["skipped"].inc(-1)
    with pytest.raises(ValueError, match="labels"):
        mine["open"].set(1)


def test_one_process_uses_the_local_metrics_workers_use_prometheus_clients(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert isinstance(Metrics().requests, LocalCounter)
    # (What the workers' scrape sums is tests/test_serve.py's: their values live in files
    # that prometheus-client picks at import, in the worker processes.)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    shared = Metrics()
    assert isinstance(shared.requests, Counter)
    assert isinstance(shared.in_flight, Gauge) and isinstance(shared.store_duration, Histogram)
