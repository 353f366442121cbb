"""Delete every order once its handler returns, batched: the handler never calls msgdel.

``DeleteMiddleware(batcher=...)`` hands each handled message to a ``msgdel.Batcher``, which
sends one deletion per stream and batch. Closing the batcher at shutdown, while the broker is
still connected, sends what is still queued. Run it against any Redis (``REDIS_URL``, default
``redis://localhost:6379``) until Ctrl-C::

    python docs/examples/middleware.py
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub

import msgdel
from msgdel.faststream import DeleteMiddleware

batcher = msgdel.Batcher()
broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://localhost:6379"),
    middlewares=[DeleteMiddleware(batcher=batcher)],
)
app = FastStream(broker)


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: dict[str, str]) -> None:
    """Bill the order. Once this returns, its entry is acknowledged and deleted."""


@app.on_shutdown  # runs while the broker is still connected
async def flush_deletions() -> None:
    await batcher.close()  # sends what is still queued and waits for every result
    await msgdel.default_registry.aclose()  # closes the connections adapters opened


if __name__ == "__main__":
    asyncio.run(app.run())
