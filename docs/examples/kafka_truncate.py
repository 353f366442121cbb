"""Truncate a Kafka partition up to each record once it is handled.

Needs a Kafka (``KAFKA_BOOTSTRAP``, default ``localhost:9092``) that creates topics on first
use (its default). ``python docs/examples/kafka_truncate.py`` publishes three orders, deletes
each once handled, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

import msgdel

ORDERS = 3
broker = KafkaBroker(os.environ.get("KAFKA_BOOTSTRAP", "localhost:9092"), logger=None)
handled: list[str] = []
done = asyncio.Event()


@broker.subscriber("orders", group_id="billing", auto_offset_reset="earliest")
async def handle(body: str, message: KafkaMessage) -> None:
    result = await msgdel.delete(message)  # this record and everything before it
    print(result.outcome, result.target, result.ids, result.removed)
    # Outcome.DELETED orders[0] ('0',) 1
    handled.append(body)
    if len(handled) == ORDERS:
        done.set()


async def main() -> None:
    async with broker:  # connected: publish first, so the topic exists when the group joins
        for n in range(1, ORDERS + 1):
            await broker.publish(f"order {n}", topic="orders")
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)


if __name__ == "__main__":
    asyncio.run(main())
