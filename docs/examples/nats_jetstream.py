"""Delete each JetStream message from its stream once it is handled.

Needs a NATS server with JetStream (``NATS_URL``, default ``nats://localhost:4222``; e.g.
``nats-server -js``). ``python docs/examples/nats_jetstream.py`` publishes three orders to the
stream ``orders``, deletes each once handled, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.nats import JStream, NatsBroker
from faststream.nats.annotations import NatsMessage

import msgdel

ORDERS = 3
broker = NatsBroker(os.environ.get("NATS_URL", "nats://localhost:4222"), logger=None)
handled: list[str] = []
done = asyncio.Event()


@broker.subscriber("orders.created", stream=JStream("orders"))
async def handle(body: str, message: NatsMessage) -> None:
    result = await msgdel.delete(message)  # exactly this message, by its stream sequence
    print(result.outcome, result.target, result.ids)  # Outcome.DELETED orders ('1',)
    handled.append(body)
    if len(handled) == ORDERS:
        done.set()


async def main() -> None:
    async with broker:
        await broker.start()  # declares the stream "orders"
        for n in range(1, ORDERS + 1):
            await broker.publish(f"order {n}", "orders.created", stream="orders")
        await asyncio.wait_for(done.wait(), 10)


if __name__ == "__main__":
    asyncio.run(main())
