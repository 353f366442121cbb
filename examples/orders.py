"""Process each order from a Redis stream in a consumer group, then delete it.

``msgdel.delete`` acknowledges and deletes the entry in one atomic round trip, so the stream
does not grow and no pending entry is left dangling. A FastStream app like any other; run it
against any Redis (``REDIS_URL``, default ``redis://localhost:6379``)::

    faststream run examples.orders:app      # until Ctrl-C
    python examples/orders.py               # publishes five orders, ships them, stops
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream, Logger
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from redis.asyncio import Redis

import msgdel

URL = os.environ.get("REDIS_URL", "redis://localhost:6379")
STREAM, GROUP = "orders", "fulfilment"
ORDERS = 5

broker = RedisBroker(URL)
app = FastStream(broker)
shipped: set[str] = set()


@broker.subscriber(stream=StreamSub(STREAM, group=GROUP, consumer="worker-1"))
async def fulfil(order: dict[str, str], msg: RedisStreamMessage, logger: Logger) -> None:
    logger.info("shipping order %s (%s)", order["id"], order["item"])
    result = await msgdel.delete(msg)
    logger.info("deleted %s from %s: %s", result.ids[0], result.target, result.outcome.value)
    shipped.add(order["id"])


async def main() -> None:
    """Publish ``ORDERS`` orders, let the app ship them, then print what the stream holds."""
    async with broker:
        await broker.start()
        for n in range(ORDERS):
            await broker.publish({"id": str(n), "item": f"book-{n}"}, stream=STREAM)
        async with Redis.from_url(URL) as redis:
            for _ in range(300):  # up to 30 s
                if len(shipped) == ORDERS:
                    break
                await asyncio.sleep(0.1)
            length = await redis.xlen(STREAM)
            pending = (await redis.xpending(STREAM, GROUP))["pending"]
    print(f"shipped {len(shipped)} orders; stream {STREAM!r}: {length} entries, {pending} pending")
    if len(shipped) != ORDERS or length or pending:
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
