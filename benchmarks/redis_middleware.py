"""Throughput of a FastStream Redis stream consumer: DeleteMiddleware(batcher) vs alternatives.

Starts its own Redis 8.2 (the test bed's class), then for each variant fills a fresh stream
with N entries, consumes them in a consumer group, and prints messages per second:

- ``no deletion``: the handler takes the body only; FastStream XACKs each entry, and the
  entries stay in the stream;
- ``consume only``: the same under ``AckPolicy.MANUAL``: no XACK, no deletion (the floor of
  what a consumer costs);
- ``DeleteMiddleware(batcher=Batcher())``: same handler; FastStream XACKs each entry and the
  batches delete them (``XDELEX``/``XACKDEL``): no entry is ever pending unacknowledged while
  its deletion waits;
- ``DeleteMiddleware(batcher=..., leave_ack_to_batch=True)``: no XACK of FastStream's own; the
  batch acknowledges and deletes (one round trip per message fewer, but until the batch is sent
  the entry stays pending, where a claiming consumer could take it);
- ``msg.delete() in handler``: FastStream's own pattern today, a handler taking
  ``msg: RedisStreamMessage`` and awaiting ``msg.delete()`` (XDEL) per message.

Variants run interleaved for several rounds; it prints the median rate of each and the median
of the per-round ratios. Run: ``.venv/bin/python -m benchmarks.redis_middleware [N] [ROUNDS]``
from the repository root.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from tests.testbed.redis import redis8


def fill(client: Any, stream: str, count: int) -> None:
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(stream, {"__data__": f"m{i}"})
    pipe.execute()


async def run(url: str, stream: str, count: int, variant: str) -> float:
    batcher = Batcher() if variant.startswith("batcher") else None
    middlewares = (
        [DeleteMiddleware(batcher=batcher, leave_ack_to_batch=variant == "batcher-leave-ack")]
        if batcher
        else []
    )
    broker = RedisBroker(url, middlewares=middlewares, logger=None)
    done = asyncio.Event()
    seen = 0
    sub = StreamSub(stream, group="g", consumer="c", polling_interval=10)

    def tick() -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            done.set()

    handler: Callable[..., Any]
    if variant == "msg.delete":

        async def handler(body: str, msg: RedisStreamMessage) -> None:
            await msg.delete()
            tick()

    else:

        async def handler(body: str) -> None:
            tick()

    policy = AckPolicy.MANUAL if variant == "consume" else AckPolicy.REJECT_ON_ERROR
    broker.subscriber(stream=sub, ack_policy=policy)(handler)
    async with broker:
        began = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        if batcher is not None:
            await batcher.close()
        elapsed = time.perf_counter() - began
    return count / elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    labels = {
        "none": "no deletion",
        "consume": "consume only (MANUAL: no XACK)",
        "batcher": "DeleteMiddleware(batcher=Batcher())",
        "batcher-leave-ack": "... leave_ack_to_batch=True",
        "msg.delete": "msg.delete() in handler",
    }
    rates: dict[str, list[float]] = {variant: [] for variant in labels}
    with tempfile.TemporaryDirectory() as workdir:
        server = redis8(Path(workdir))
        server.start()
        try:
            client: Any = server.client()
            for number in range(rounds):  # interleaved, so machine noise hits every variant
                for variant in labels:
                    stream = f"bench-{variant}-{number}"
                    fill(client, stream, count)
                    rates[variant].append(asyncio.run(run(server.url, stream, count, variant)))
                    left = client.xlen(stream)
                    if (left == 0) == (variant in ("none", "consume")):
                        raise SystemExit(f"{variant}: {left} entries left in {stream}")
                    unacknowledged = client.xpending(stream, "g")["pending"]
                    if unacknowledged and variant != "consume":
                        raise SystemExit(f"{variant}: {unacknowledged} entries pending")
        finally:
            server.stop()
    print(f"{count:,} messages per run, {rounds} rounds; median msg/s (each round)")
    for variant, label in labels.items():
        each = " ".join(f"{r:.0f}" for r in rates[variant])
        print(f"{label:<40} {statistics.median(rates[variant]):>8.0f} msg/s  ({each})")

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    print(f"middleware / no deletion:        {ratio('batcher', 'none'):.2f}x  (goal >= 0.9x)")
    print(f"middleware / consume only:       {ratio('batcher', 'consume'):.2f}x")
    print(f"middleware / msg.delete():       {ratio('batcher', 'msg.delete'):.2f}x  (goal >= 1.5x)")
    print(f"leave_ack_to_batch / middleware: {ratio('batcher-leave-ack', 'batcher'):.2f}x")


if __name__ == "__main__":
    main()
