"""Counters, gauges and histograms of one process, kept as plain numbers that the registry
reads when it is scraped.

Fast path: prometheus-client's own metrics take a lock for every update and find a
histogram's bucket with a loop in Python: 41 k instructions a token request, 5% of it
(`bench/icount.py`, the same code with the request's metrics left out). Here the event loop
is the only writer, so a number and `+=` do, a histogram's bucket is found by `bisect`, and
one collector (`LocalCollector`) hands the registry the same families prometheus-client's
metrics would, sample for sample (tests/http/test_local_metrics.py compares the two
expositions). The names, help texts, label names and buckets are the callers', as they would
give them to prometheus-client.

Only for a single process: with `server.workers > 1` the workers' values are summed across
processes by prometheus-client's multiprocess mode, which needs its own metrics
(sidecar/http/metrics.py chooses).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


class CounterValue:
    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self.value += amount


class GaugeValue:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = float(value)


class HistogramValue:
    __slots__ = ("bounds", "counts", "created", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds  # ascending, +Inf last
        self.counts = [0] * len(bounds)
        self.sum = 0.0
        self.created = time.time()

    def observe(self, amount: float) -> None:
        # The first bucket whose upper bound is >= amount, as prometheus-client's loop finds.
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount


V = TypeVar("V", CounterValue, GaugeValue, HistogramValue)


class _Family(Generic[V]):
    """A metric's values by label values, in the order they were first asked for."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 make: Callable[[], V], collector: LocalCollector) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._make: Callable[[], V] = make
        self.children: dict[tuple[str, ...], V] = {}
        if not self.labelnames:
            self.children[()] = make()  # exposed from the start, as prometheus-client does
        collector.families.append(self)

    def labels(self, *values: str) -> V:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: {len(self.labelnames)} label values expected")
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = self._make()
        return child

    def _single(self) -> V:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels: use .labels(...)")
        return self.children[()]

    def family(self) -> Metric:
        raise NotImplementedError


class LocalCounter(_Family[CounterValue]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 collector: LocalCollector) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labelnames, CounterValue,
                         collector)

    def inc(self, amount: float = 1.0) -> None:
        self._single().inc(amount)

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(values, child.value, created=child.created)
        return family


class LocalGauge(_Family[GaugeValue]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 collector: LocalCollector) -> None:
        super().__init__(name, documentation, labelnames, GaugeValue, collector)

    def inc(self, amount: float = 1.0) -> None:
        self._single().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._single().dec(amount)

    def set(self, value: float) -> None:
        self._single().set(value)

    def family(self) -> Metric:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self.children.items():
            family.add_metric(values, child.value)
        return family


class LocalHistogram(_Family[HistogramValue]):
    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = (), *,
                 buckets: Sequence[float], collector: LocalCollector) -> None:
        bounds = tuple(float(b) for b in buckets)
        if bounds[-1] != math.inf:
            bounds += (math.inf,)
        self.bounds = bounds
        super().__init__(name, documentation, labelnames, lambda: HistogramValue(bounds),
                         collector)

    def observe(self, amount: float) -> None:
        self._single().observe(amount)

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        edges = [floatToGoString(b) for b in self.bounds]  # type: ignore[no-untyped-call]
        for values, child in self.children.items():
            cumulative, buckets = 0, []
            for edge, count in zip(edges, child.counts, strict=True):
                cumulative += count
                buckets.append((edge, float(cumulative)))
            family.add_metric(values, buckets, child.sum)
            family.samples.append(Sample(f"{self.name}_created",
                                         dict(zip(self.labelnames, values, strict=True)),
                                         child.created))
        return family


class LocalCollector(Collector):
    """The local metrics of one registry: register it with the registry once, then make the
    metrics with it (`LocalCounter(..., collector=it)`)."""

    def __init__(self) -> None:
        self.families: list[_Family[CounterValue] | _Family[GaugeValue]
                            | _Family[HistogramValue]] = []

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()
