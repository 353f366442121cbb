"""Delete an order only while its stream still holds it, not another order under its id.

Where producers set entry ids (``XADD orders 1-1 ...``, a replay) and streams are deleted and
created again, the id of a message being handled can name another message by the time it is
deleted. ``RedisStreamAdapter(match_fields=True)`` deletes an entry only while it holds the
fields the message was consumed with; otherwise it leaves the entry alone and reports
``ALREADY_GONE``. Run it against any Redis (``REDIS_URL``, default ``redis://localhost:6379``)
until Ctrl-C::

    python docs/examples/redis_match_fields.py
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

checked = msgdel.Registry()
adapter = RedisStreamAdapter(match_fields=True)
checked.register(redis.RedisStreamMessage, adapter)
checked.register(redis.RedisBatchStreamMessage, adapter)

broker = RedisBroker(os.environ.get("REDIS_URL", "redis://localhost:6379"))
app = FastStream(broker)


async def ship(order: str) -> None:
    """Ship the order (a call to another service, which takes a while)."""


@broker.subscriber(stream=StreamSub("orders", group="shipping", consumer="s1"))
async def handle(order: str, msg: RedisStreamMessage) -> None:
    await ship(order)  # meanwhile, the stream may have been deleted and replayed
    result = await msgdel.delete(msg, registry=checked)
    print(result.outcome.name, result.ids[0])


@app.on_shutdown
async def close_msgdel() -> None:
    await checked.aclose()


if __name__ == "__main__":
    asyncio.run(app.run())
