"""Delete each order at once, although another consumer group has not finished with it.

By default msgdel keeps an entry (outcome ``DEFERRED``) while another group of its stream
still needs it. ``RedisStreamAdapter(ignore_other_groups=True)`` deletes it regardless, here
through a registry of its own, so other deletions keep the default. Run it against any Redis
(``REDIS_URL``, default ``redis://localhost:6379``) until Ctrl-C::

    python docs/examples/redis_other_groups.py
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis import message as redis
from faststream.redis.annotations import RedisStreamMessage

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter

regardless = msgdel.Registry()
adapter = RedisStreamAdapter(ignore_other_groups=True)
regardless.register(redis.RedisStreamMessage, adapter)
regardless.register(redis.RedisBatchStreamMessage, adapter)

broker = RedisBroker(os.environ.get("REDIS_URL", "redis://localhost:6379"))
app = FastStream(broker)


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: str, msg: RedisStreamMessage) -> None:
    """Bill the order, then delete its entry for every group, "shipping" included."""
    result = await msgdel.delete(msg, registry=regardless)
    print(result.outcome.name, result.ids[0])


@app.on_shutdown
async def close_msgdel() -> None:
    await regardless.aclose()


if __name__ == "__main__":
    asyncio.run(app.run())
