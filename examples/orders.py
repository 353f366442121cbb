"""Process each order from a Redis stream in a consumer group, then delete it.

The seed scenario done right: ``msgdel.delete`` acknowledges and deletes the entry in one
atomic round trip, so the stream does not grow and no pending entry is left dangling.

Run it against any Redis (``REDIS_URL``, default ``redis://localhost:6379``)::

    python examples/orders.py
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage

import msgdel

STREAM = "orders"
ORDERS = 5

broker = RedisBroker(os.environ.get("REDIS_URL", "redis://localhost:6379"))
app = FastStream(broker)
processed = asyncio.Event()
done: list[str] = []


@broker.subscriber(stream=StreamSub(STREAM, group="fulfilment", consumer="worker-1"))
async def fulfil(order: dict[str, str], msg: RedisStreamMessage) -> None:
    print(f"shipping order {order['id']} ({order['item']})")
    result = await msgdel.delete(msg)
    print(f"  deleted {result.ids[0]} from {result.target}: {result.outcome.value}")
    done.append(order["id"])
    if len(done) == ORDERS:
        processed.set()


async def main() -> None:
    async with broker:
        await broker.start()
        for n in range(ORDERS):
            await broker.publish({"id": str(n), "item": f"book-{n}"}, stream=STREAM)
        await asyncio.wait_for(processed.wait(), timeout=30)
        redis = broker._connection
        length = await redis.xlen(STREAM)
        pending = (await redis.xpending(STREAM, "fulfilment"))["pending"]
        print(f"stream {STREAM!r}: {length} entries left, {pending} pending")


if __name__ == "__main__":
    asyncio.run(main())
