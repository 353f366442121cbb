"""Throughput of a FastStream Redis stream consumer: DeleteMiddleware(batcher) vs alternatives.

Starts its own Redis 8.2 (the test bed's class), then for each variant fills a fresh stream
with N entries, consumes them in a consumer group, and prints messages per second:

- ``no deletion``: the handler takes the body only; entries stay in the stream;
- ``DeleteMiddleware(batcher=Batcher())``: same handler, entries deleted in batches;
- ``msg.delete() in handler``: FastStream's own pattern today, a handler taking
  ``msg: RedisStreamMessage`` and awaiting ``msg.delete()`` (XDEL) per message.

Run: ``.venv/bin/python -m benchmarks.redis_middleware [N]`` from the repository root.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    batcher = Batcher() if variant == "batcher" else None
    middlewares = [DeleteMiddleware(batcher=batcher)] if batcher else []
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

    broker.subscriber(stream=sub)(handler)
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
    with tempfile.TemporaryDirectory() as workdir:
        server = redis8(Path(workdir))
        server.start()
        try:
            client: Any = server.client()
            rates: dict[str, float] = {}
            labels = {
                "none": "no deletion",
                "batcher": "DeleteMiddleware(batcher=Batcher())",
                "msg.delete": "msg.delete() in handler",
            }
            for variant in labels:
                stream = f"bench-{variant}"
                fill(client, stream, count)
                rates[variant] = asyncio.run(run(server.url, stream, count, variant))
                left = client.xlen(stream)
                print(f"{labels[variant]:<40} {rates[variant]:>8.0f} msg/s  (XLEN after: {left})")
            print(f"middleware / no deletion:      {rates['batcher'] / rates['none']:.2f}x")
            print(f"middleware / msg.delete():     {rates['batcher'] / rates['msg.delete']:.2f}x")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
