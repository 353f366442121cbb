"""Metrics and traces of real JetStream deletions on the test bed's NATS server: the same
observer seam as on Redis, so the same metric names and span attributes, with this broker's
labels. Metrics are scraped over HTTP from prometheus-client's exporter; spans come from the
OpenTelemetry SDK's in-memory exporter, beside FastStream's own ``NatsTelemetryMiddleware``;
the stream's own state says what was deleted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from faststream.nats.opentelemetry import NatsTelemetryMiddleware
from opentelemetry.trace import StatusCode

import msgdel
import msgdel.otel
import msgdel.prometheus
from msgdel import DeletionFailed, Outcome
from tests.nats.harness import JetStreamHarness
from tests.observability import Exporter, Spans, exporter


@pytest.fixture
def prometheus() -> Iterator[Exporter]:
    with exporter() as served:
        yield served


@pytest.fixture
def spans() -> Spans:
    return Spans()


async def test_scraped_counters_say_what_jetstream_deleted(
    nats_server: Any, prometheus: Exporter
) -> None:
    async with JetStreamHarness(nats_server) as harness:
        registry = harness.registry
        msgdel.prometheus.instrument(registry, prometheus_registry=prometheus.registry)
        async with harness.consumed(3) as got:
            await msgdel.delete_many(got.messages, registry=registry)
            again = await msgdel.delete(got.messages[0], registry=registry)
        assert again.outcome is Outcome.ALREADY_GONE
        assert await harness.stored(got.target) == []

    scrape = await prometheus.scrape()
    nats_exact = {"broker": "nats", "semantics": "exact"}
    assert scrape.value("msgdel_messages_total", outcome="deleted", **nats_exact) == 3
    assert scrape.value("msgdel_messages_total", outcome="already_gone", **nats_exact) == 1
    assert scrape.value("msgdel_records_removed_total", outcome="deleted", **nats_exact) == 3
    assert scrape.value("msgdel_call_messages_sum", broker="nats", operation="delete_many") == 3
    assert scrape.value("msgdel_call_duration_seconds_count", broker="nats") == 2
    assert {s.labels["broker"] for s in scrape.samples("msgdel_messages_total")} == {"nats"}


async def test_a_delete_in_a_handler_is_a_child_of_faststreams_process_span(
    nats_server: Any, spans: Spans
) -> None:
    async with JetStreamHarness(nats_server) as harness:
        msgdel.otel.instrument(harness.registry, tracer_provider=spans.provider)

        async def handle(index: int, message: Any) -> None:
            await msgdel.delete(message, registry=harness.registry)

        telemetry = NatsTelemetryMiddleware(tracer_provider=spans.provider)
        app = await harness.run_app(telemetry, 2, handle=handle)
        assert await harness.stored(app.target) == []

    processes = {p.context.span_id: p for p in spans.named("process")}
    deletions = spans.msgdel()
    assert len(deletions) == len(processes) == 2
    for deletion in deletions:
        assert deletion.parent is not None
        assert deletion.parent.span_id in processes
        assert deletion.context.trace_id == processes[deletion.parent.span_id].context.trace_id
        attributes = dict(deletion.attributes or {})
        assert attributes["messaging.system"] == "nats"
        assert attributes["messaging.destination.name"] == app.target
        assert attributes["msgdel.outcome.deleted"] == 1
        assert deletion.name == f"delete {app.target}"


async def test_a_stopped_server_counts_failures_and_errors_the_span(
    nats_server: Any, prometheus: Exporter, spans: Spans
) -> None:
    async with JetStreamHarness(nats_server) as harness:
        registry = harness.registry
        msgdel.prometheus.instrument(registry, prometheus_registry=prometheus.registry)
        msgdel.otel.instrument(registry, tracer_provider=spans.provider)
        async with harness.consumed(2) as got:
            await harness.stop()
            try:
                outcomes = await msgdel.delete_many(
                    got.messages, registry=registry, return_exceptions=True
                )
            finally:
                await harness.start()
            assert await harness.stored(got.target) == [i for ids in got.ids for i in ids]
    errors = [o for o in outcomes if isinstance(o, DeletionFailed)]
    assert len(errors) == 2

    scrape = await prometheus.scrape()
    retryable = "true" if errors[0].retryable else "false"
    failed = {"broker": "nats", "error": "DeletionFailed", "retryable": retryable}
    assert scrape.value("msgdel_failures_total", **failed) == 2
    assert scrape.value("msgdel_messages_total") is None
    (span,) = spans.msgdel()
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["msgdel.failed"] == 2
