"""The dead-letter reapers: one sweep of a backlog of dead messages, delete-only and
copy-then-delete, in messages per second and the sweeping process's peak memory.

Each run is a fresh Python process (so its peak RSS is its own): the parent makes the
backlog, then starts the child, which connects, notes its RSS, sweeps once and prints its
rate and its peak RSS during the sweep (``VmHWM``, reset just before it). Arms (policy x
backlog size) rotate round by round, so machine noise hits each alike; each prints its
median and range. The small backlog (a tenth) shows whether memory grows with the backlog:
it should not. Each run is checked at the broker afterwards.

- Redis 8.2 (the test bed's): ``--entries`` entries read into group ``g`` and never
  acknowledged (dead by ``min_deliveries=1``); ``RedisReaper`` with page size
  ``--page-size``; then the stream is empty, nothing is pending, and (copy) the dead-letter
  stream holds every entry.
- JetStream (the test bed's nats-server): a work-queue stream of ``--jetstream`` messages
  that consumer ``worker`` (``max_deliver=1``) fetched and never acknowledged, so given up,
  with no reaper listening; ``JetStreamReaper.sweep()`` recovers them from the consumer's
  state (one ``STREAM.MSG.GET`` each, and with a dead-letter subject one JetStream publish
  each); then the stream is empty and (copy) the dead-letter stream holds every message.

    .venv/bin/python benchmarks/reaper.py [--entries 100000] [--jetstream 20000]
        [--page-size 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHUNK = 5000


def status_kib(field: str) -> int:
    """A size from /proc/self/status in KiB (Linux): `VmRSS` now, `VmHWM` its peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peak() -> None:
    """Start measuring the peak RSS afresh (Linux: 5 in clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


async def child(spec: dict[str, Any]) -> None:
    """One sweep; prints a JSON line: seconds, reaped, dead-lettered, the RSS before the sweep
    and the peak RSS during it."""
    from msgdel.reaper import JetStreamReaper, Policy, RedisReaper

    if spec["broker"] == "redis":
        from redis.asyncio import Redis

        client: Any = Redis.from_url(spec["url"])
        policy = Policy(min_deliveries=1, dead_letter=spec["dlq"])
        reaper: Any = RedisReaper(client, stream=spec["stream"], group="g", policy=policy,
                                  page_size=spec["page"])  # fmt: skip
        await client.ping()
    else:
        import nats

        client = await nats.connect(spec["url"])
        reaper = JetStreamReaper(client, stream=spec["stream"], consumer="worker",
                                 dead_letter=spec["dlq"])  # fmt: skip
    reset_peak()
    before = status_kib("VmRSS")
    began = time.perf_counter()
    report = await reaper.sweep()
    seconds = time.perf_counter() - began
    peak = status_kib("VmHWM")  # the peak since reset_peak(): during the sweep
    await (client.aclose() if spec["broker"] == "redis" else client.close())
    print(json.dumps({
        "seconds": seconds, "reaped": report.reaped, "dead_lettered": report.dead_lettered,
        "complete": report.complete, "rss_before": before, "peak": peak,
        "error": str(report.error),
    }))  # fmt: skip


def sweep_in_child(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return got


def figures(got: dict[str, Any], size: int) -> dict[str, float]:
    return {
        "rate": size / got["seconds"],
        "peak": got["peak"] / 1024,
        "growth": (got["peak"] - got["rss_before"]) / 1024,
    }


def table(title: str, unit: str, arms: list[tuple[str, int]],
          runs: dict[tuple[str, int], list[dict[str, float]]]) -> None:  # fmt: skip
    print(title)
    head = f"{'policy':<18}{unit:>13}{'per second':>26}{'peak RSS MiB':>22}"
    print(head + f"{'RSS growth in sweep MiB':>28}")
    for policy, size in arms:
        cells = []
        for key, fmt in (("rate", "{:,.0f}"), ("peak", "{:.1f}"), ("growth", "{:.1f}")):
            values = [r[key] for r in runs[(policy, size)]]
            median = fmt.format(statistics.median(values))
            cells.append(f"{median} [{fmt.format(min(values))}-{fmt.format(max(values))}]")
        name = "delete-only" if policy == "delete" else "copy-then-delete"
        print(f"{name:<18}{size:>13,}{cells[0]:>26}{cells[1]:>22}{cells[2]:>28}")


async def give_up(url: str, stream: str, count: int, copy: bool) -> None:
    """A work-queue stream of ``count`` messages whose consumer ``worker`` (max_deliver=1)
    fetched every one and acknowledged none: all given up, as after a crash of the reaper."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in (stream, f"DEAD_{stream}"):
        with contextlib.suppress(Exception):
            await js.delete_stream(name)
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"],
                                     retention=RetentionPolicy.WORK_QUEUE))  # fmt: skip
    if copy:
        await js.add_stream(StreamConfig(name=f"DEAD_{stream}", subjects=[f"dead.{stream}"]))
    body = b"x" * 200
    for first in range(0, count, 1000):
        acks = [js.publish(f"{stream}.orders", body) for _ in range(min(1000, count - first))]
        await asyncio.gather(*acks)
    config = ConsumerConfig(
        durable_name="worker", max_deliver=1, ack_policy=AckPolicy.EXPLICIT, ack_wait=1
    )
    await js.add_consumer(stream, config)
    sub = await js.pull_subscribe_bind("worker", stream)
    fetched = 0
    while fetched < count:
        fetched += len(await sub.fetch(1000, timeout=5))
    await asyncio.sleep(1.5)  # past ack_wait: given up
    with contextlib.suppress(Exception):
        await sub.fetch(1, timeout=0.5)  # a pull makes the server notice
    await sub.unsubscribe()
    info = await js.consumer_info(stream, "worker")
    assert info.num_ack_pending == 0, info
    await nc.close()


async def jetstream_state(url: str, stream: str) -> tuple[int, int]:
    """Messages left in ``stream`` and in its dead-letter stream (0 when it has none)."""
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    left = (await js.stream_info(stream)).state.messages
    try:
        dead = (await js.stream_info(f"DEAD_{stream}")).state.messages
    except Exception:
        dead = 0
    await nc.close()
    return left, dead


def fill(client: object, stream: str, count: int) -> None:
    """``count`` entries (a FastStream-sized body each), all read in group ``g``, unacked."""
    client.delete(stream, f"{stream}:dead")  # type: ignore[attr-defined]
    body = {"__data__": b"x" * 200, "__headers__": b'{"content-type":"application/json"}'}
    for first in range(0, count, CHUNK):
        pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
        for _ in range(min(CHUNK, count - first)):
            pipe.xadd(stream, body)
        pipe.execute()
    client.xgroup_create(stream, "g", id="0")  # type: ignore[attr-defined]
    read = 0
    while read < count:
        got = client.xreadgroup("g", "c1", {stream: ">"}, count=CHUNK)  # type: ignore[attr-defined]
        read += sum(len(entries) for _, entries in got)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--entries", type=int, default=100_000)
    args.add_argument("--jetstream", type=int, default=20_000)
    args.add_argument("--page-size", type=int, default=500)
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--child", metavar="SPEC")
    opts = args.parse_args()
    if opts.child:
        asyncio.run(child(json.loads(opts.child)))
        return
    redis_figures(opts)
    if opts.jetstream:
        print()
        jetstream_figures(opts)


def redis_figures(opts: argparse.Namespace) -> None:
    import redis

    from tests.testbed.redis import redis8

    server = redis8(Path(tempfile.mkdtemp(prefix="msgdel-reaper-bench-")))
    server.start()
    try:
        client = redis.Redis(host="127.0.0.1", port=server.port)
        small = max(opts.entries // 10, 1)
        arms = [(policy, size) for size in (opts.entries, small) for policy in ("delete", "copy")]
        runs: dict[tuple[str, int], list[dict[str, float]]] = {arm: [] for arm in arms}
        for round_ in range(opts.rounds):
            order = arms[round_ % len(arms) :] + arms[: round_ % len(arms)]
            for policy, size in order:
                stream = f"bench-{policy}-{size}"
                fill(client, stream, size)
                dlq = f"{stream}:dead" if policy == "copy" else None
                got = sweep_in_child({"broker": "redis", "url": server.url, "stream": stream,
                                      "page": opts.page_size, "dlq": dlq})  # fmt: skip
                assert got["complete"], got
                assert got["reaped"] == size, got
                assert client.xlen(stream) == 0
                assert client.xpending(stream, "g")["pending"] == 0
                if policy == "copy":
                    assert client.xlen(f"{stream}:dead") == size == got["dead_lettered"]
                client.delete(stream, f"{stream}:dead")
                runs[(policy, size)].append(figures(got, size))
        version = ".".join(map(str, server.version))
    finally:
        server.stop()
    table(f"RedisReaper.sweep(), Redis {version}, page size {opts.page_size}, "
          f"{opts.rounds} rounds (median [min-max])", "dead entries", arms, runs)  # fmt: skip


def jetstream_figures(opts: argparse.Namespace) -> None:
    from tests.testbed.nats import NatsServer

    server = NatsServer(Path(tempfile.mkdtemp(prefix="msgdel-reaper-bench-nats-")))
    server.start()
    try:
        size, small = opts.jetstream, max(opts.jetstream // 10, 1)
        arms = [(policy, n) for n in (size, small) for policy in ("delete", "copy")]
        runs: dict[tuple[str, int], list[dict[str, float]]] = {arm: [] for arm in arms}
        for round_ in range(opts.rounds):
            order = arms[round_ % len(arms) :] + arms[: round_ % len(arms)]
            for policy, n in order:
                stream = f"BENCH_{policy}_{n}"
                asyncio.run(give_up(server.url, stream, n, policy == "copy"))
                dlq = f"dead.{stream}" if policy == "copy" else None
                got = sweep_in_child({"broker": "nats", "url": server.url, "stream": stream,
                                      "page": 0, "dlq": dlq})  # fmt: skip
                assert got["complete"], got
                assert got["reaped"] == n, got
                left, dead = asyncio.run(jetstream_state(server.url, stream))
                assert left == 0, left
                assert dead == (n if policy == "copy" else 0), dead
                runs[(policy, n)].append(figures(got, n))
    finally:
        server.stop()
    table(f"JetStreamReaper.sweep() (recovery scan of a work-queue stream), nats-server, "
          f"{opts.rounds} rounds (median [min-max])", "messages", arms, runs)  # fmt: skip


if __name__ == "__main__":
    main()
