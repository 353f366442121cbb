"""Assert which deletions a FastStream app asked for, under FastStream's in-memory broker.

``TestRedisBroker`` sends nothing to a Redis: msgdel's adapters recognise its messages,
send nothing either, and report ``Outcome.SKIPPED``; ``record_deletions()`` records them.
``python docs/examples/record_deletions.py`` needs the redis extra, not a Redis.
"""

from __future__ import annotations

import asyncio
import contextlib

from faststream.redis import RedisBroker, TestRedisBroker

from msgdel.faststream import DeleteMiddleware
from msgdel.testing import record_deletions

broker = RedisBroker(middlewares=[DeleteMiddleware()])


@broker.subscriber(stream="orders")
async def handle(order: str) -> None:
    if order == "bad":
        raise ValueError("rejected")


async def main() -> None:
    with record_deletions() as deletions:
        async with TestRedisBroker(broker) as br:
            await br.publish("good", stream="orders")
            with contextlib.suppress(ValueError):  # the handler's error reaches the publisher
                await br.publish("bad", stream="orders")
    assert deletions.bodies == [b"good"]  # the failing handler kept its message
    assert deletions.results[0].outcome.value == "skipped"
    print("deleted:", deletions.bodies)


if __name__ == "__main__":
    asyncio.run(main())
