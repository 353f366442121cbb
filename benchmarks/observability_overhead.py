"""What msgdel's metrics plus tracing cost, against both off, on Redis 8.2.

Two workloads, each with two arms that do the same work at the broker:

- ``delete_many``, 500 entries per call (read in group ``g``, pending there): arm ``off`` on a
  registry without observers, arm ``on`` on a registry with ``msgdel.prometheus.instrument``
  (a fresh ``CollectorRegistry``) and ``msgdel.otel.instrument`` (the OpenTelemetry SDK's
  ``TracerProvider`` with a ``BatchSpanProcessor`` whose exporter drops the spans, so what is
  measured is making and queueing them, not a network). Calls interleave, call by call.
- the batched middleware app: a FastStream Redis stream consumer with
  ``DeleteMiddleware(batcher=Batcher(registry))``, arm ``on`` with the same two instruments
  (``metrics=`` on the middleware). FastStream's own telemetry middleware is off in both arms:
  this measures msgdel's instrumentation only. Arms interleave, run by run.

It prints each arm's rate per round (``delete_many``: from the round's median call), the
medians, and the median of the per-round ratios on/off with their range (goal: at most 5%
slower, a ratio >= 0.95); and for ``delete_many``, as a figure the machine's load moves
less, the time spent in the two observers, timed in the loop by observers around them. It
checks that every stream ends empty with nothing pending and that the ``on`` arm counted
every message.

It ends with figure lines (``_common.figure``): each on/off ratio against the goal of 0.95x.

    .venv/bin/python benchmarks/observability_overhead.py [--entries 20000] [--messages 5000]
        [--rounds 5] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, describe, parser, sizes
from _servers import BATCH, fill_stream, fill_stream_sync, read_group, redis_url, stream_messages
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisStreamMessage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

import msgdel
import msgdel.otel
import msgdel.prometheus
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from msgdel.observe import DeletionReport

ARMS = ("off", "on")


class Drop(SpanExporter):
    """Receives the SDK's batches of spans and keeps none (counts them)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS


def instrumented(
    registry: msgdel.Registry, provider: TracerProvider, *, metrics: bool = True
) -> CollectorRegistry:
    """Metrics (unless the middleware adds them) and tracing on ``registry``."""
    prometheus = CollectorRegistry()
    if metrics:
        msgdel.prometheus.instrument(registry, prometheus_registry=prometheus)
    msgdel.otel.instrument(registry, tracer_provider=provider)
    return prometheus


def tracer_provider() -> tuple[TracerProvider, Drop]:
    provider = TracerProvider()
    exporter = Drop()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


def deleted(prometheus: CollectorRegistry) -> float:
    return sum(
        s.value
        for family in prometheus.collect()
        for s in family.samples
        if s.name == "msgdel_messages_total" and s.labels.get("outcome") == "deleted"
    )


# -- delete_many, 500 per call ------------------------------------------------------------------
async def pending_entries(client: Redis, stream: str, count: int) -> list[RedisStreamMessage]:
    """``count`` entries of a fresh ``stream``, read in group ``g`` and pending there."""
    await fill_stream(client, stream, count, group="g")
    ids = [i for i, _ in await read_group(client, stream, "g", count)]
    return stream_messages(client, stream, ids, "g")


async def delete_many_round(url: str, entries: int, number: int) -> dict[str, float]:
    client = Redis.from_url(url)
    provider, dropped = tracer_provider()
    registries = {arm: msgdel.Registry() for arm in ARMS}
    stopwatch = Stopwatch()
    registries["on"].add_observer(stopwatch.start)
    prometheus = instrumented(registries["on"], provider)
    registries["on"].add_observer(stopwatch.stop)
    work = {arm: await pending_entries(client, f"overhead-{number}-{arm}", entries) for arm in ARMS}
    calls: dict[str, list[float]] = {arm: [] for arm in ARMS}
    for start in range(0, entries, BATCH):
        order = ARMS if (start // BATCH) % 2 == 0 else ARMS[::-1]  # neither always goes first
        for arm in order:
            messages = work[arm][start : start + BATCH]
            began = time.perf_counter()
            results = await msgdel.delete_many(messages, registry=registries[arm])
            calls[arm].append(time.perf_counter() - began)
            assert all(r.outcome is msgdel.Outcome.DELETED for r in results), arm
    provider.shutdown()  # exports what is queued
    for arm in ARMS:
        stream = f"overhead-{number}-{arm}"
        assert await client.xlen(stream) == 0, f"{arm}: entries left"
        assert (await client.xpending(stream, "g"))["pending"] == 0, f"{arm}: pending left"
    assert deleted(prometheus) == entries, "the metrics missed deletions"
    assert dropped.spans == entries // BATCH + (entries % BATCH > 0), "spans missing"
    await client.aclose()
    # the median call: a burst of load on the machine moves a sum, not a median
    rates = {arm: BATCH / statistics.median(seconds) for arm, seconds in calls.items()}
    rates["observers"] = statistics.median(stopwatch.spans) / statistics.median(calls["off"])
    return rates


class Stopwatch:
    """Two observers around the others: the time the others took on each report."""

    def __init__(self) -> None:
        self.began = 0.0
        self.spans: list[float] = []

    def start(self, report: DeletionReport) -> None:
        self.began = time.perf_counter()

    def stop(self, report: DeletionReport) -> None:
        self.spans.append(time.perf_counter() - self.began)


# -- the batched middleware app -----------------------------------------------------------------
async def app_run(url: str, stream: str, count: int, arm: str) -> float:
    registry = msgdel.Registry()
    batcher = Batcher(registry)
    prometheus: CollectorRegistry | None = None
    provider: TracerProvider | None = None
    if arm == "on":
        provider, _ = tracer_provider()
        prometheus = instrumented(registry, provider, metrics=False)
        middleware = DeleteMiddleware(batcher=batcher, metrics=prometheus)
    else:
        middleware = DeleteMiddleware(batcher=batcher)
    broker = RedisBroker(url, middlewares=[middleware], logger=None)
    done = asyncio.Event()
    seen = 0

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", polling_interval=10))
    async def handle(body: str) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    async with broker:
        began = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        await batcher.close()
        elapsed = time.perf_counter() - began
    if provider is not None and prometheus is not None:
        provider.shutdown()
        assert deleted(prometheus) == count, "the metrics missed deletions"
    return count / elapsed


def app_rounds(url: str, client: Any, messages: int, rounds: int) -> list[dict[str, float]]:
    results = []
    for number in range(rounds):
        rates = {}
        for arm in ARMS if number % 2 == 0 else ARMS[::-1]:
            stream = f"overhead-app-{number}-{arm}"
            fill_stream_sync(client, stream, messages)
            rates[arm] = asyncio.run(app_run(url, stream, messages, arm))
            assert client.xlen(stream) == 0, f"{arm}: entries left in {stream}"
            assert client.xpending(stream, "g")["pending"] == 0, f"{arm}: entries pending"
        results.append(rates)
    return results


def report(title: str, unit: str, rounds: list[dict[str, float]]) -> Ratio:
    print(f"\n{title}")
    for arm in ARMS:
        each = " ".join(f"{r[arm]:,.0f}" for r in rounds)
        values = [r[arm] for r in rounds]
        print(
            f"  {arm:<4} median {statistics.median(values):>9,.0f} {unit}  "
            f"range {min(values):,.0f}-{max(values):,.0f}  ({each})"
        )
    ratios = [r["on"] / r["off"] for r in rounds]
    print(
        f"  on / off: median {statistics.median(ratios):.3f}x, rounds {min(ratios):.3f}-"
        f"{max(ratios):.3f}x (goal >= 0.95x: at most 5% slower)"
    )
    if "observers" in rounds[0]:
        shares = [r["observers"] for r in rounds]
        print(
            f"  time in the two observers (timed in the loop), per call: median "
            f"{statistics.median(shares):.1%} of the median call without them, rounds "
            f"{min(shares):.1%}-{max(shares):.1%}"
        )
    return Ratio(ratios)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--entries", type=int, help="per arm and round (20,000)")
    options.add_argument("--messages", type=int, help="per app run (5,000)")
    args = sizes(options.parse_args(), entries=(20_000, 5_000), messages=(5_000, 1_000),
                 rounds=(5, 3))  # fmt: skip
    with redis_url("8") as url:
        many = [asyncio.run(delete_many_round(url, args.entries, n)) for n in range(args.rounds)]
        import redis

        client = redis.Redis.from_url(url)
        app = app_rounds(url, client, args.messages, args.rounds)
        client.close()
    describe({
        "off": "delete_many / the app as they are: XACKDEL per call; the app XACKs per message "
        "and XDELEX per batch",
        "on": "the same commands; the observers add no round trip (the span exporter drops)",
    })  # fmt: skip
    ratio = report(
        f"delete_many, {BATCH} per call, Redis 8.2: {args.entries:,} entries per arm and "
        f"round, {args.rounds} rounds",
        "entries/s",
        many,
    )
    ratio.figure("Observability on vs off: Redis delete_many", ">= 0.95")
    ratio = report(
        f"DeleteMiddleware(batcher=Batcher()) app, Redis 8.2: {args.messages:,} messages per "
        f"run, {args.rounds} rounds",
        "msg/s",
        app,
    )
    ratio.figure("Observability on vs off: Redis batched middleware app", ">= 0.95")


if __name__ == "__main__":
    main()
