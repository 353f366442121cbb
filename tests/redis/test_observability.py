"""Metrics, traces and logs of real deletions on the test bed's Redis.

Metrics are read as Prometheus reads them: scraped over HTTP from prometheus-client's own
exporter and parsed with its parser. Spans come from the OpenTelemetry SDK's in-memory
exporter, beside FastStream's own ``RedisTelemetryMiddleware``. Every spec also checks the
stream itself, so the figures are about what Redis really did.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from faststream import Context
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.opentelemetry import RedisTelemetryMiddleware
from opentelemetry.trace import SpanKind, StatusCode

import msgdel
import msgdel.otel
import msgdel.prometheus
from msgdel import DeletionFailed, Outcome
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from tests.core.adapters import DictAdapter, Note
from tests.eventually import eventually
from tests.observability import Exporter, Spans, exporter, texts_of_span
from tests.redis.harness import CONSUMER, GROUP, StreamHarness, entry_ids, fill, unique, wait_for
from tests.testbed.redis import RedisServer


@pytest.fixture
def prometheus() -> Iterator[Exporter]:
    with exporter() as served:
        yield served


@pytest.fixture
def spans() -> Spans:
    return Spans()


Handler = Callable[[Any], Awaitable[None]]


async def nothing(message: Any) -> None:
    pass


@asynccontextmanager
async def app(
    server: Any,
    stream: str,
    middlewares: list[Any],
    count: int,
    handler: Handler = nothing,
) -> AsyncIterator[list[Any]]:
    """A FastStream app reading ``stream`` in the group; it publishes ``count`` messages
    through its own broker (so they carry FastStream's trace context when its telemetry
    middleware is on) and stops once its handler ran for every one. Stopping waits for the
    middlewares (their deletions) to finish."""
    fill(server.client(), stream, [])  # the group, before anything is published
    broker = RedisBroker(server.url, middlewares=middlewares, graceful_timeout=30, logger=None)
    handled: list[Any] = []

    @broker.subscriber(
        stream=StreamSub(stream, group=GROUP, consumer=CONSUMER, polling_interval=10)
    )
    async def handle(body: Any, message: Any = Context("message")) -> None:  # noqa: B008
        await handler(message)
        handled.append(message)

    async with broker:
        await broker.start()
        for i in range(count):
            await broker.publish(f"m{i}", stream=stream)
        await wait_for(lambda: len(handled) >= count)
        yield handled


# -- Prometheus ---------------------------------------------------------------------------------
async def test_scraped_counters_say_how_many_messages_had_each_outcome_and_records_went(
    redis_server: RedisServer, prometheus: Exporter
) -> None:
    harness = StreamHarness(redis_server)
    msgdel.prometheus.instrument(harness.registry, prometheus_registry=prometheus.registry)
    async with harness.consumed(3) as got:
        await msgdel.delete_many(got.messages, registry=harness.registry)
        again = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert again.outcome is Outcome.ALREADY_GONE
    assert await harness.stored(got.target) == []

    scrape = await prometheus.scrape()
    redis_exact = {"broker": "redis", "semantics": "exact"}
    assert scrape.value("msgdel_messages_total", outcome="deleted", **redis_exact) == 3
    assert scrape.value("msgdel_messages_total", outcome="already_gone", **redis_exact) == 1
    assert scrape.value("msgdel_records_removed_total", outcome="deleted", **redis_exact) == 3
    assert scrape.value("msgdel_failures_total") is None
    assert {tuple(sorted(s.labels)) for s in scrape.samples("msgdel_messages_total")} == {
        ("broker", "outcome", "semantics")  # no target, no id: one series per outcome
    }
    for operation, messages in (("delete_many", 3), ("delete", 1)):
        labels = {"broker": "redis", "operation": operation}
        assert scrape.value("msgdel_call_messages_count", **labels) == 1
        assert scrape.value("msgdel_call_messages_sum", **labels) == messages
        assert scrape.value("msgdel_call_duration_seconds_count", **labels) == 1
        assert scrape.value("msgdel_call_duration_seconds_bucket", le="+Inf", **labels) == 1
    assert "# HELP msgdel_messages_total Messages whose deletion the broker answered" in (
        scrape.text
    )


async def test_with_target_each_stream_has_its_own_series(
    redis8_server: RedisServer, prometheus: Exporter
) -> None:
    left, right = StreamHarness(redis8_server), StreamHarness(redis8_server)
    registry = left.registry
    msgdel.prometheus.instrument(
        registry, prometheus_registry=prometheus.registry, with_target=True
    )
    async with left.consumed(2) as a, right.consumed(1) as b:
        await msgdel.delete_many([*a.messages, *b.messages], registry=registry)
    assert await left.stored(a.target) == await right.stored(b.target) == []

    scrape = await prometheus.scrape()
    deleted = {"broker": "redis", "outcome": "deleted", "semantics": "exact"}
    assert scrape.value("msgdel_messages_total", target=a.target, **deleted) == 2
    assert scrape.value("msgdel_messages_total", target=b.target, **deleted) == 1
    assert {s.labels["target"] for s in scrape.samples("msgdel_messages_total")} == {
        a.target,
        b.target,
    }


async def test_a_stopped_server_counts_retryable_failures_and_nothing_deleted(
    own_redis: RedisServer, prometheus: Exporter
) -> None:
    harness = StreamHarness(own_redis)
    msgdel.prometheus.instrument(harness.registry, prometheus_registry=prometheus.registry)
    async with harness.consumed(2) as got:
        await harness.stop()
        try:
            outcomes = await msgdel.delete_many(
                got.messages, registry=harness.registry, return_exceptions=True
            )
        finally:
            await harness.start()
        assert all(isinstance(o, DeletionFailed) and o.retryable for o in outcomes)
        assert await harness.stored(got.target) == [i for ids in got.ids for i in ids]

    scrape = await prometheus.scrape()
    failed = {"broker": "redis", "error": "DeletionFailed", "retryable": "true"}
    assert scrape.value("msgdel_failures_total", **failed) == 2
    assert scrape.value("msgdel_messages_total") is None
    assert scrape.value("msgdel_call_messages_sum", operation="delete_many") == 2


async def test_batcher_gauges_show_what_waits_for_a_broker_that_is_down_then_drain(
    own_redis: RedisServer, prometheus: Exporter
) -> None:
    harness = StreamHarness(own_redis)
    metrics = msgdel.prometheus.instrument(
        harness.registry, prometheus_registry=prometheus.registry
    )
    batcher = Batcher(harness.registry, max_pending=50, retries=200, backoff=0.05, max_backoff=0.2)
    metrics.track(batcher, "orders")
    gauges = ("msgdel_batcher_pending", "msgdel_batcher_in_flight", "msgdel_batcher_max_pending")

    async def read_gauges() -> tuple[float | None, ...]:
        scrape = await prometheus.scrape()
        return tuple(scrape.value(name, batcher="orders") for name in gauges)

    async with harness.consumed(3) as got:
        await harness.stop()
        try:
            futures = [await batcher.submit(m) for m in got.messages]

            async def retrying() -> bool:  # the first attempt failed
                return bool((await prometheus.scrape()).value("msgdel_failures_total"))

            assert await eventually(retrying, True) is True
            assert await read_gauges() == (3, 1, 50)
        finally:
            await harness.start()
        await batcher.close()
        assert [f.result().outcome for f in futures] == [Outcome.DELETED] * 3
        assert await harness.stored(got.target) == []

    assert await read_gauges() == (0, 0, 50)
    scrape = await prometheus.scrape()
    assert scrape.value("msgdel_messages_total", outcome="deleted") == 3
    failed = scrape.value("msgdel_failures_total", error="DeletionFailed", retryable="true")
    assert failed is not None
    assert failed >= 3
    assert failed % 3 == 0
    assert scrape.value("msgdel_call_messages_sum", operation="batch") == failed + 3


async def test_the_middleware_metrics_argument_instruments_its_batcher_and_registry(
    redis8_server: RedisServer, prometheus: Exporter
) -> None:
    registry = msgdel.Registry()
    stream = unique("metrics-app")
    client: Any = redis8_server.client()
    async with Batcher(registry) as batcher:
        middleware = DeleteMiddleware(batcher=batcher, metrics=prometheus.registry)
        async with app(redis8_server, stream, [middleware], 4):
            await wait_for(lambda: entry_ids(client, stream) == [])

    scrape = await prometheus.scrape()
    assert scrape.value("msgdel_messages_total", outcome="deleted") == 4
    assert scrape.value("msgdel_call_messages_sum", operation="batch") == 4
    assert scrape.value("msgdel_batcher_max_pending", batcher="default") == batcher.max_pending
    assert scrape.value("msgdel_batcher_pending", batcher="default") == 0


def test_one_prometheus_registry_holds_one_set_of_msgdel_metrics(prometheus: Exporter) -> None:
    first, second = msgdel.Registry(), msgdel.Registry()
    metrics = msgdel.prometheus.instrument(first, prometheus_registry=prometheus.registry)
    assert msgdel.prometheus.instrument(first, prometheus_registry=prometheus.registry) is metrics
    assert msgdel.prometheus.instrument(second, prometheus_registry=prometheus.registry) is metrics
    assert first.observers == second.observers == (metrics,)
    with pytest.raises(ValueError, match="with_target=False"):
        msgdel.prometheus.instrument(
            first, prometheus_registry=prometheus.registry, with_target=True
        )


# -- OpenTelemetry ------------------------------------------------------------------------------
async def test_a_delete_in_a_handler_is_a_child_of_faststreams_process_span(
    redis8_server: RedisServer, spans: Spans
) -> None:
    registry = msgdel.Registry()
    msgdel.otel.instrument(registry, tracer_provider=spans.provider)
    stream = unique("traced")

    async def handler(message: Any) -> None:
        await msgdel.delete(message, registry=registry)

    telemetry = RedisTelemetryMiddleware(tracer_provider=spans.provider)
    async with app(redis8_server, stream, [telemetry], 1, handler) as handled:
        pass
    assert entry_ids(redis8_server.client(), stream) == []

    (process,) = spans.named("process")
    (deletion,) = spans.msgdel()
    assert deletion.parent is not None
    assert deletion.parent.span_id == process.context.span_id
    assert deletion.context.trace_id == process.context.trace_id
    assert deletion.name == f"delete {stream}"
    assert deletion.kind is SpanKind.CLIENT
    assert deletion.status.status_code is StatusCode.UNSET
    assert dict(deletion.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.operation.name": "delete",
        "messaging.destination.name": stream,
        "msgdel.broker": "redis",
        "msgdel.operation": "delete",
        "msgdel.semantics": "exact",
        "msgdel.outcome.deleted": 1,
        "msgdel.removed": 1,
    }
    assert process.start_time is not None
    assert deletion.start_time is not None
    assert deletion.end_time is not None
    assert process.end_time is not None
    assert process.start_time <= deletion.start_time < deletion.end_time <= process.end_time
    assert len(handled) == 1


async def test_a_middleware_deletion_joins_the_trace_its_message_carries(
    redis8_server: RedisServer, spans: Spans
) -> None:
    """DeleteMiddleware deletes after FastStream's telemetry middleware has left the handler's
    context: the span's parent is the message's creation context (from its headers), beside
    FastStream's process span in the same trace."""
    registry = msgdel.Registry()
    msgdel.otel.instrument(registry, tracer_provider=spans.provider)
    stream = unique("traced-middleware")
    telemetry = RedisTelemetryMiddleware(tracer_provider=spans.provider)
    async with app(redis8_server, stream, [telemetry, DeleteMiddleware(registry=registry)], 2):
        pass
    assert entry_ids(redis8_server.client(), stream) == []

    processes = {p.context.trace_id: p for p in spans.named("process")}
    deletions = spans.msgdel()
    assert len(deletions) == len(processes) == 2
    for deletion in deletions:
        process = processes[deletion.context.trace_id]
        assert deletion.parent is not None
        assert process.parent is not None
        assert deletion.parent.span_id == process.parent.span_id  # the message's "create"
        assert (deletion.attributes or {})["msgdel.outcome.deleted"] == 1


async def test_a_batched_middleware_flush_links_to_the_traces_its_messages_carry(
    redis8_server: RedisServer, spans: Spans
) -> None:
    registry = msgdel.Registry()
    msgdel.otel.instrument(registry, tracer_provider=spans.provider)
    stream = unique("traced-batch")
    telemetry = RedisTelemetryMiddleware(tracer_provider=spans.provider)
    client = redis8_server.client()
    async with Batcher(registry, max_size=3, max_delay=3600) as batcher:  # one flush of three
        middleware = DeleteMiddleware(batcher=batcher)
        async with app(redis8_server, stream, [telemetry, middleware], 3):
            await wait_for(lambda: entry_ids(client, stream) == [])

    (flush,) = spans.msgdel()
    assert (flush.attributes or {})["msgdel.outcome.deleted"] == 3
    assert flush.parent is None  # no span is current where the middleware submits
    linked = {link.context.span_id for link in flush.links}
    created = {p.parent.span_id for p in spans.named("process") if p.parent is not None}
    assert len(created) == 3
    assert linked == created  # each message's "create" span, from its headers


async def test_delete_many_and_batcher_flush_spans_count_the_batch_and_its_outcomes(
    redis8_server: RedisServer, spans: Spans
) -> None:
    harness = StreamHarness(redis8_server)
    msgdel.otel.instrument(harness.registry, tracer_provider=spans.provider)
    async with harness.consumed(3) as got:
        await msgdel.delete_many(got.messages[:2], registry=harness.registry)
        async with Batcher(harness.registry) as batcher:
            for message in got.messages[1:]:
                await batcher.submit(message)
    assert await harness.stored(got.target) == []

    many, flush = spans.msgdel()
    assert many.parent is None  # called outside any span; the messages carry no trace context
    assert many.attributes is not None
    assert flush.attributes is not None
    assert many.attributes["msgdel.operation"] == "delete_many"
    assert many.attributes["messaging.batch.message_count"] == 2
    assert many.attributes["msgdel.outcome.deleted"] == 2
    assert flush.attributes["msgdel.operation"] == "batch"
    assert flush.attributes["messaging.batch.message_count"] == 2
    assert flush.attributes["msgdel.outcome.already_gone"] == 1
    assert flush.attributes["msgdel.outcome.deleted"] == 1
    assert flush.attributes["msgdel.removed"] == 1
    assert flush.name == many.name == f"delete {got.target}"


async def test_a_failed_deletion_ends_its_span_with_an_error_status(
    own_redis: RedisServer, spans: Spans
) -> None:
    harness = StreamHarness(own_redis)
    msgdel.otel.instrument(harness.registry, tracer_provider=spans.provider, with_target=False)
    async with harness.consumed(2) as got:
        await harness.stop()
        try:
            outcomes = await msgdel.delete_many(
                got.messages, registry=harness.registry, return_exceptions=True
            )
        finally:
            await harness.start()
        assert await harness.stored(got.target) == [i for ids in got.ids for i in ids]
    assert all(isinstance(o, DeletionFailed) for o in outcomes)

    (span,) = spans.msgdel()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None
    assert span.status.description.startswith("2 of 2 failed: ")
    assert span.attributes is not None
    assert span.attributes["error.type"] == "DeletionFailed"
    assert span.attributes["msgdel.failed"] == 2
    assert "messaging.destination.name" not in span.attributes
    assert span.name == "delete"
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "msgdel.errors.DeletionFailed"
    assert event.attributes["exception.message"] == str(outcomes[0])


# -- logs ---------------------------------------------------------------------------------------
async def test_each_call_logs_one_debug_line_with_broker_target_and_outcome_and_nothing_at_info(
    redis8_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    harness = StreamHarness(redis8_server)
    caplog.set_level(logging.DEBUG, logger="msgdel")
    async with harness.consumed(2) as got:
        await msgdel.delete_many(got.messages, registry=harness.registry)
    assert await harness.stored(got.target) == []

    ours = [r for r in caplog.records if r.name.startswith("msgdel")]
    (line,) = ours
    assert line.name == "msgdel.deletions"
    assert line.levelno == logging.DEBUG
    extra = {k: getattr(line, k) for k in ("broker", "target", "outcome", "outcomes", "messages")}
    assert extra == {
        "broker": "redis",
        "target": got.target,
        "outcome": "deleted",
        "outcomes": {"deleted": 2},
        "messages": 2,
    }
    assert line.getMessage().startswith(f"delete_many of 2 messages via redis ({got.target})")


# -- secrets ------------------------------------------------------------------------------------
class PasswordProtected:
    """``server`` as a client sees it once ``requirepass`` is set: the password in its URL."""

    def __init__(self, server: RedisServer, password: str) -> None:
        self.server = server
        self.password = password
        self.url = f"redis://:{password}@127.0.0.1:{server.port}"

    def client(self) -> Any:
        return redis.Redis(host="127.0.0.1", port=self.server.port, password=self.password)


async def test_no_url_password_reaches_a_log_line_a_span_or_a_metric_label(
    own_redis: RedisServer,
    prometheus: Exporter,
    spans: Spans,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Deletions that succeed, and deletions that fail because the password was changed under
    the running app, on a broker connected with ``redis://:<password>@...``; the metrics and
    spans name their targets, and every msgdel log line is captured down to DEBUG."""
    secret, rotated = "s3cret-in-the-url", "r0tated-s3cret"
    redis.Redis(port=own_redis.port).config_set("requirepass", secret)
    server = PasswordProtected(own_redis, secret)
    harness = StreamHarness(server)
    registry = harness.registry
    msgdel.prometheus.instrument(
        registry, prometheus_registry=prometheus.registry, with_target=True
    )
    msgdel.otel.instrument(registry, tracer_provider=spans.provider)
    caplog.set_level(logging.DEBUG, logger="msgdel")
    try:
        async with harness.consumed(3) as got:
            assert (await msgdel.delete(got.messages[0], registry=registry)).deleted
            admin = server.client()
            admin.config_set("requirepass", rotated)
            admin.client_kill_filter(_type="normal", skipme=False)  # every client reconnects
            failed = await msgdel.delete_many(
                got.messages[1:2], registry=registry, return_exceptions=True
            )
            async with Batcher(registry) as batcher:
                with pytest.raises(DeletionFailed):
                    await batcher.delete(got.messages[2])
            redis.Redis(port=own_redis.port, password=rotated).config_set("requirepass", secret)
            assert await harness.stored(got.target) == [i for ids in got.ids[1:] for i in ids]
    finally:
        redis.Redis(port=own_redis.port, password=secret).config_set("requirepass", "")
    assert isinstance(failed[0], DeletionFailed)

    records = [r for r in caplog.records if r.name.startswith("msgdel")]
    assert len([r for r in records if r.name == "msgdel.deletions"]) == 3
    log_texts = [logging.Formatter().format(r) for r in records]
    log_texts += [str(v) for r in records for v in vars(r).values()]
    traced = [t for s in spans.msgdel() for t in texts_of_span(s)]
    assert len(spans.msgdel()) == 3  # delete, delete_many, the batch
    scrape = await prometheus.scrape()
    assert scrape.value("msgdel_failures_total", error="DeletionFailed") == 2
    assert got.target in scrape.label_values()
    for password in (secret, rotated):
        assert [t for t in log_texts if password in t] == []
        assert [t for t in traced if password in t] == []
        assert password not in scrape.text


async def test_instrumenting_twice_traces_each_deletion_once(
    redis8_server: RedisServer, spans: Spans
) -> None:
    harness = StreamHarness(redis8_server)
    tracing = msgdel.otel.instrument(harness.registry, tracer_provider=spans.provider)
    assert msgdel.otel.instrument(harness.registry, tracer_provider=spans.provider) is tracing
    async with harness.consumed(1) as got:
        await msgdel.delete(got.messages[0], registry=harness.registry)
    assert len(spans.msgdel()) == 1


async def test_a_target_holding_a_url_password_is_redacted_in_labels_and_span_names(
    prometheus: Exporter, spans: Spans
) -> None:
    """A custom adapter may name its target after a URL: the password never leaves msgdel."""
    registry = msgdel.Registry(builtins=False)
    registry.register(Note, DictAdapter(a=b"1"))
    msgdel.prometheus.instrument(
        registry, prometheus_registry=prometheus.registry, with_target=True
    )
    msgdel.otel.instrument(registry, tracer_provider=spans.provider)

    await msgdel.delete(Note("a", target="redis://user:hunter2@cache/notes"), registry=registry)

    scrape = await prometheus.scrape()
    assert scrape.value("msgdel_messages_total", target="redis://***@cache/notes") == 1
    assert "hunter2" not in scrape.text
    (span,) = spans.msgdel()
    assert span.name == "delete redis://***@cache/notes"
    assert [t for t in texts_of_span(span) if "hunter2" in t] == []
