"""Delete a consumed RabbitMQ message: its delivery is settled (acked) through FastStream.

Needs a RabbitMQ (``RABBIT_URL``, default ``amqp://guest:guest@localhost:5672/``);
``python docs/examples/rabbit_delete.py`` publishes one order, deletes it, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

import msgdel

URL = os.environ.get("RABBIT_URL", "amqp://guest:guest@localhost:5672/")
broker = RabbitBroker(URL, logger=None)
done = asyncio.Event()


@broker.subscriber("orders")  # FastStream's default policy: ack after the handler
async def handle(body: str, message: RabbitMessage) -> None:
    result = await msgdel.delete(message)  # FastStream's ack afterwards is a no-op
    print(result.outcome, result.target, result.ids)  # Outcome.DELETED orders ('1',)
    done.set()


async def main() -> None:
    async with broker:
        await broker.start()
        await broker.publish("order 1", queue="orders")
        await asyncio.wait_for(done.wait(), 10)


if __name__ == "__main__":
    asyncio.run(main())
