"""Dead-letter deleted RabbitMQ messages instead of dropping them.

``RabbitAdapter(dead_letter=True)`` settles with ``basic.reject`` without requeue: the message
leaves its queue and goes to the queue's dead-letter exchange, here the default exchange with
the routing key ``payments.dead``, with an ``x-death`` header saying it was ``rejected``.
Needs a RabbitMQ (``RABBIT_URL``, default ``amqp://guest:guest@localhost:5672/``);
``python docs/examples/rabbit_dead_letter.py`` publishes one payment, deletes it, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.message import RabbitMessage as RabbitMessageType

import msgdel
from msgdel.adapters.rabbit import RabbitAdapter

msgdel.register(RabbitMessageType, RabbitAdapter(dead_letter=True), replace=True)

URL = os.environ.get("RABBIT_URL", "amqp://guest:guest@localhost:5672/")
broker = RabbitBroker(URL, logger=None)
payments = RabbitQueue(
    "payments",
    arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "payments.dead"},
)
done = asyncio.Event()


@broker.subscriber(payments)
async def handle(body: str, message: RabbitMessage) -> None:
    result = await msgdel.delete(message)  # gone from payments, kept in payments.dead
    print(result.outcome, result.target)  # Outcome.DELETED payments
    done.set()


async def main() -> None:
    async with broker:
        await broker.declare_queue(RabbitQueue("payments.dead"))  # where dead letters land
        await broker.start()
        await broker.publish("payment 1", queue="payments")
        await asyncio.wait_for(done.wait(), 10)


if __name__ == "__main__":
    asyncio.run(main())
