"""Under ``AckPolicy.MANUAL``, delete what you want gone and let the rest be.

Deliveries that are never settled go back to the queue when the consumer's channel closes,
for another consumer. Needs a RabbitMQ (``RABBIT_URL``, default
``amqp://guest:guest@localhost:5672/``); ``python docs/examples/rabbit_manual.py`` publishes
two audit records, deletes the debug one, and stops: the other is back in the queue.
"""

from __future__ import annotations

import asyncio
import os

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

import msgdel

URL = os.environ.get("RABBIT_URL", "amqp://guest:guest@localhost:5672/")
broker = RabbitBroker(URL, logger=None)
handled: list[str] = []
both = asyncio.Event()


@broker.subscriber("audit", ack_policy=AckPolicy.MANUAL)
async def audit(body: str, message: RabbitMessage) -> None:
    if body.startswith("debug:"):
        await msgdel.delete(message)  # gone; everything else stays for another consumer
    handled.append(body)
    if len(handled) == 2:
        both.set()


async def main() -> None:
    async with broker:
        await broker.start()
        await broker.publish("debug: cache warmed", queue="audit")
        await broker.publish("login: alice", queue="audit")
        await asyncio.wait_for(both.wait(), 10)
    print("handled", sorted(handled), "- the login record is back in the queue")


if __name__ == "__main__":
    asyncio.run(main())
