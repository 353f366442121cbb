"""Prometheus metrics of every deletion (the `msgdel[prometheus]` extra, prometheus-client).

```python
import msgdel.prometheus

metrics = msgdel.prometheus.instrument()   # msgdel.default_registry -> prometheus REGISTRY
metrics.track(batcher)                     # the Batcher gauges (optional)
```

The metrics are an observer of the msgdel registry
([`msgdel.Registry.add_observer`][msgdel.Registry.add_observer]), so they see every adapter call of
`delete`, `delete_many`, a Batcher and the middleware, whatever the broker. Label values come only
from msgdel's own vocabulary (the adapter's broker family, outcome, semantics, error class,
operation), so the number of series is bounded by the code, never by the data; `with_target=True`
adds the target (stream, queue, topic-partition, ...), one series per target: see
`docs/observability.md`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from msgdel._tally import tally_of
from msgdel.batcher import Batcher
from msgdel.errors import redact
from msgdel.observe import DeletionReport
from msgdel.registry import Registry, default_registry
from msgdel.semantics import Outcome, Semantics

__all__ = ["DURATION_BUCKETS", "SIZE_BUCKETS", "Metrics", "instrument"]

DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Buckets of `msgdel_call_duration_seconds`: a Redis call of one message takes about
0.2 ms on loopback, a Kafka DeleteRecords on a replicated topic about 0.5 s."""
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Buckets of `msgdel_call_messages` (the Batcher's `max_size` is 512 by default)."""

_instances: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()
"""The [`Metrics`][msgdel.prometheus.Metrics] of each Prometheus registry: its metric names can
exist once there."""


class Metrics:
    """msgdel's metrics on one Prometheus registry; an [`Observer`][msgdel.Observer].

    Create it with [`instrument`][msgdel.prometheus.instrument], which also adds it to a msgdel
    registry. Every call counts, per message, its outcome or its failure, and the call's duration
    and size:

    - `msgdel_messages_total{broker, outcome, semantics}`: messages the broker answered;
    - `msgdel_records_removed_total{broker, outcome, semantics}`: records it reports gone;
    - `msgdel_failures_total{broker, error, retryable}`: messages whose deletion failed;
    - `msgdel_call_duration_seconds{broker, operation}`, `msgdel_call_messages{broker,
      operation}`: histograms per adapter call;
    - `msgdel_batcher_pending`, `msgdel_batcher_in_flight`, `msgdel_batcher_max_pending`
      (label `batcher`): gauges of the batchers given to [`track`][msgdel.prometheus.Metrics.track].

    `with_target` adds the `target` label to the first two (errors name no target).
    """

    def __init__(
        self, prometheus_registry: CollectorRegistry = REGISTRY, *, with_target: bool = False
    ) -> None:
        if not isinstance(with_target, bool):
            raise TypeError(f"with_target must be True or False, got {with_target!r}")
        self.with_target = with_target
        by = ["broker", "outcome", "semantics", *(["target"] if with_target else [])]
        self.messages = Counter(
            "msgdel_messages",
            "Messages whose deletion the broker answered, by the outcome it reported "
            "(deleted, already_gone, nothing_stored, deferred, skipped); failures are in "
            "msgdel_failures_total",
            by,
            registry=prometheus_registry,
        )
        self.removed = Counter(
            "msgdel_records_removed",
            "Records the broker reports removed (DeleteResult.removed): more than the messages "
            "for a Kafka prefix truncation, none for an outcome other than deleted",
            by,
            registry=prometheus_registry,
        )
        self.failures = Counter(
            "msgdel_failures",
            "Messages whose deletion failed, by msgdel error class and whether the same "
            "deletion can succeed later (retryable)",
            ["broker", "error", "retryable"],
            registry=prometheus_registry,
        )
        self.duration = Histogram(
            "msgdel_call_duration_seconds",
            "Duration of one adapter call (one broker round trip per target, or a few)",
            ["broker", "operation"],
            registry=prometheus_registry,
            buckets=DURATION_BUCKETS,
        )
        self.size = Histogram(
            "msgdel_call_messages",
            "Messages per adapter call (delete: 1; delete_many and Batcher flushes: the batch)",
            ["broker", "operation"],
            registry=prometheus_registry,
            buckets=SIZE_BUCKETS,
        )
        self.batchers = _BatcherGauges()
        prometheus_registry.register(self.batchers)
        self._children: dict[tuple[Any, ...], Any] = {}

    def __call__(self, report: DeletionReport) -> None:
        """Count one adapter call (what [`msgdel.Registry.report`][msgdel.Registry.report]
        calls)."""
        broker = report.features.broker
        counted = tally_of(report)
        for (outcome, semantics, target), (count, removed) in counted.answered.items():
            messages, records = self._answered(broker, outcome, semantics, target)
            messages.inc(count)
            if removed:
                records.inc(removed)
        for (error, retryable), count in counted.failed.items():
            self._child(
                self.failures, broker, error.__name__, "true" if retryable else "false"
            ).inc(count)
        operation = report.operation
        self._child(self.duration, broker, operation).observe(report.seconds)
        self._child(self.size, broker, operation).observe(len(report.outcomes))

    def track(self, batcher: Batcher, name: str = "default") -> None:
        """Export `batcher`'s pending deletions, in-flight flushes and `max_pending` as
        gauges labelled `batcher=name` (summed over the batchers of one name). The batcher
        is held weakly: a collected batcher drops out of the gauges."""
        if not isinstance(batcher, Batcher):
            raise TypeError(f"track takes a msgdel.Batcher, got {batcher!r}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {name!r}")
        self.batchers.batchers[batcher] = name

    def untrack(self, batcher: Batcher) -> None:
        """Stop exporting `batcher`'s gauges (nothing happens if it was not tracked)."""
        self.batchers.batchers.pop(batcher, None)

    def __repr__(self) -> str:
        return f"<msgdel.prometheus.Metrics with_target={self.with_target}>"

    def _answered(
        self, broker: str, outcome: Outcome, semantics: Semantics, target: str
    ) -> tuple[Any, Any]:
        """The `msgdel_messages_total` and `msgdel_records_removed_total` children."""
        child = (
            (broker, outcome, semantics, target)
            if self.with_target
            else (broker, outcome, semantics)
        )
        found = self._children.get(child)
        if found is None:
            values = [broker, outcome.value, semantics.value]
            if self.with_target:
                values.append(redact(target))
            found = (self.messages.labels(*values), self.removed.labels(*values))
            self._children[child] = found
        return found

    def _child(self, metric: Any, *values: str) -> Any:
        child = (metric, *values)
        found = self._children.get(child)
        if found is None:
            found = self._children[child] = metric.labels(*values)
        return found


class _BatcherGauges(Collector):
    """The gauges of the tracked batchers, read from their properties at each scrape."""

    def __init__(self) -> None:
        self.batchers: weakref.WeakKeyDictionary[Batcher, str] = weakref.WeakKeyDictionary()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterable[GaugeMetricFamily]:
        sums: dict[str, list[int]] = {}
        for batcher, name in list(self.batchers.items()):
            values = sums.setdefault(name, [0, 0, 0])
            values[0] += batcher.pending
            values[1] += batcher.in_flight
            values[2] += batcher.max_pending
        return self._families(sums)

    @staticmethod
    def _families(sums: dict[str, list[int]]) -> Iterator[GaugeMetricFamily]:
        for index, (name, text) in enumerate(
            (
                ("msgdel_batcher_pending",
                 "Deletions submitted to a msgdel Batcher and not settled yet (queued or in "
                 "flight); submit() waits while it is at max_pending"),
                ("msgdel_batcher_in_flight",
                 "Batcher flushes sent to the broker whose results are not all settled yet "
                 "(a flush retrying a broker that is down stays in flight)"),
                ("msgdel_batcher_max_pending",
                 "The Batcher's max_pending: pending deletions beyond it wait (back-pressure)"),
            )
        ):  # fmt: skip
            family = GaugeMetricFamily(name, text, labels=["batcher"])
            for batcher, values in sums.items():
                family.add_metric([batcher], values[index])
            yield family


def instrument(
    registry: Registry | None = None,
    *,
    prometheus_registry: CollectorRegistry | None = None,
    with_target: bool = False,
) -> Metrics:
    """Count every deletion made through `registry` (default: `msgdel.default_registry`)
    in `prometheus_registry` (default: prometheus-client's `REGISTRY`); return the
    [`Metrics`][msgdel.prometheus.Metrics], whose [`track`][msgdel.prometheus.Metrics.track] adds a
    Batcher's gauges.

    Idempotent: one Prometheus registry has one [`Metrics`][msgdel.prometheus.Metrics], shared by
    every msgdel registry instrumented into it, and a msgdel registry is observed once. Raises
    `ValueError` when that Prometheus registry's metrics were made with another
    `with_target`. Stop with `registry.remove_observer(metrics)`.
    """
    registry = default_registry if registry is None else registry
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
    target = REGISTRY if prometheus_registry is None else prometheus_registry
    if not isinstance(target, CollectorRegistry):
        raise TypeError(
            f"prometheus_registry must be a prometheus_client.CollectorRegistry or None, "
            f"got {prometheus_registry!r}"
        )
    metrics = _instances.get(target)
    if metrics is None:
        metrics = _instances[target] = Metrics(target, with_target=with_target)
    elif metrics.with_target != with_target:
        raise ValueError(
            f"this Prometheus registry already has msgdel's metrics with "
            f"with_target={metrics.with_target}; one registry holds one label set"
        )
    if metrics not in registry.observers:
        registry.add_observer(metrics)
    return metrics


def instrument_middleware(
    registry: Registry | None, batcher: Batcher | None, prometheus: bool | CollectorRegistry
) -> None:
    """What `DeleteMiddleware(metrics=...)` does: instrument the registry the middleware
    deletes through (its batcher's, if it has one), and track its batcher as `"default"`."""
    if prometheus is False:
        return
    if prometheus is not True and not isinstance(prometheus, CollectorRegistry):
        raise TypeError(
            f"metrics must be True, False or a prometheus_client.CollectorRegistry, "
            f"got {prometheus!r}"
        )
    metrics = instrument(
        batcher.registry if batcher is not None else registry,
        prometheus_registry=None if prometheus is True else prometheus,
    )
    if batcher is not None:
        metrics.track(batcher)
