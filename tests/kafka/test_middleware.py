"""DeleteMiddleware against the test bed's Kafka: consumed partitions end truncated to their end.

Kafka deletes by prefix (DeleteRecords up to offset + 1), so the middleware's promise per
partition is: after the handled records, the log start is the end offset; a record whose
handler failed (``when="success"``) stays only as long as no later record of its partition
was handled successfully, because that record's deletion truncates everything before it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware

pytestmark = pytest.mark.kafka

Bodies = dict[int, list[str]]
"""The bodies to produce to each partition, in order."""


async def topic_with(url: str, bodies: Bodies) -> str:
    """A fresh topic with one partition per key of ``bodies``, holding those bodies."""
    topic = f"mw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=url)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(bodies), 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=url, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, body.encode(), partition=partition)
            for partition, items in bodies.items()
            for body in items
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return topic


async def log_ranges(url: str, topic: str, partitions: int) -> list[tuple[int, int]]:
    """(log start offset, log end offset) of each partition, as the broker reports them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=url)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        starts, ends = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        return [(starts[tp], ends[tp]) for tp in tps]
    finally:
        await consumer.stop()


async def consume(url: str, topic: str, middleware: DeleteMiddleware, bodies: Bodies) -> None:
    """Run a FastStream app on ``topic`` until it handled every body; "fail*" bodies raise."""
    # graceful_timeout: closing waits for the last handlers' middleware (their deletions).
    broker = KafkaBroker(url, middlewares=[middleware], logger=None, graceful_timeout=30)
    expected = sum(len(items) for items in bodies.values())
    handled: list[str] = []
    done = asyncio.Event()

    @broker.subscriber(topic, group_id="app", auto_offset_reset="earliest")
    async def handle(body: str) -> None:
        handled.append(body)
        if len(handled) == expected:
            done.set()
        if body.startswith("fail"):
            raise ValueError("the handler failed")

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
        if middleware.batcher is not None:  # closed as on_shutdown does: broker still connected
            await middleware.batcher.close()


@pytest.mark.parametrize("batched", [True, False], ids=["batcher", "direct"])
async def test_two_hundred_handled_messages_leave_both_partitions_empty(
    kafka_server: Any, batched: bool
) -> None:
    bodies = {p: [f"m{p}-{i}" for i in range(100)] for p in range(2)}
    topic = await topic_with(kafka_server.url, bodies)
    async with Batcher() as batcher:
        middleware = DeleteMiddleware(batcher=batcher if batched else None)
        await consume(kafka_server.url, topic, middleware, bodies)

    emptied = [(100, 100), (100, 100)]  # log start == end offset: nothing left
    assert await log_ranges(kafka_server.url, topic, 2) == emptied


async def test_a_failing_handler_keeps_its_record_until_a_later_one_of_its_partition_succeeds(
    kafka_server: Any,
) -> None:
    bodies = {
        0: [f"ok{i}" for i in range(9)] + ["fail9"],  # the failing record is the last one
        1: ["ok0", "ok1", "fail2", "ok3", "ok4"],  # a success after it truncates it (PREFIX)
    }
    topic = await topic_with(kafka_server.url, bodies)
    await consume(kafka_server.url, topic, DeleteMiddleware("success"), bodies)

    ranges = await log_ranges(kafka_server.url, topic, 2)
    assert ranges[0] == (9, 10)  # everything before the failed record is gone, it is not
    assert ranges[1] == (5, 5)
