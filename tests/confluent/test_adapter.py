"""The confluent-kafka adapter against the test bed's real Apache Kafka (single node and cluster).

Set-up and checks use confluent-kafka only, so this module runs where aiokafka is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faststream.confluent import KafkaBroker, TestKafkaBroker
from faststream.confluent.annotations import KafkaMessage as Consumed
from faststream.confluent.message import KafkaMessage

import msgdel
from msgdel import NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.confluent import ConfluentAdapter
from tests.faults import delete_across_restart, retried
from tests.testbed.kafka import KafkaServer

pytestmark = pytest.mark.confluent


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(
    url: str,
    topic: str,
    *,
    assignment: list[list[int]] | None = None,
    configs: dict[str, str] | None = None,
) -> None:
    if assignment:
        new = NewTopic(
            topic, len(assignment), -1, replica_assignment=assignment, config=configs or {}
        )
    else:
        new = NewTopic(topic, num_partitions=1, replication_factor=1, config=configs or {})
    admin = AdminClient({"bootstrap.servers": url})  # keep it alive until the future resolves
    admin.create_topics([new])[topic].result(30)


def produce(
    url: str, topic: str, count: int, *, key: bytes | None = None, partition: int = 0
) -> None:
    producer = Producer({"bootstrap.servers": url})
    for i in range(count):
        producer.produce(topic, f"m{i}".encode(), key=key, partition=partition)
    assert producer.flush(30) == 0


def log_range(url: str, topic: str, partition: int = 0) -> tuple[int, int]:
    """(log start offset, log end offset) as the broker reports them."""
    consumer = Consumer({"bootstrap.servers": url, "group.id": "probe"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
    finally:
        consumer.close()
    return int(low), int(high)


def read_all(url: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record still readable in partition 0: (offset, key, value)."""
    start, end = log_range(url, topic)
    # No auto-commit: a "reader" group committing positions would cap protect_groups deletions.
    consumer = Consumer(
        {"bootstrap.servers": url, "group.id": "reader", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    got: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        while start < end and (not got or got[-1][0] < end - 1):
            record = consumer.poll(5)
            if record is not None and record.error() is None:
                got.append((record.offset(), record.key(), record.value()))
    finally:
        consumer.close()
    return got


def commit(url: str, group: str, topic: str, offset: int) -> None:
    consumer = Consumer({"bootstrap.servers": url, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


@contextlib.asynccontextmanager
async def consumed(url: str, topic: str, count: int) -> AsyncIterator[list[Any]]:
    """A running FastStream (confluent) subscriber and the first ``count`` messages it consumed."""
    broker = KafkaBroker(url)
    messages: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(topic, group_id="main", auto_offset_reset="earliest")
    async def handle(body: Any, message: Consumed) -> None:
        messages.append(message)
        if len(messages) >= count:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
        yield messages


async def test_testbed_kafka_works_through_faststream_confluent(kafka_server: Any) -> None:
    """The test bed's smoke test for the confluent client: publish, consume, read watermarks."""
    topic = unique("c-smoke")
    broker = KafkaBroker(kafka_server.url)
    got: list[str] = []
    done = asyncio.Event()

    @broker.subscriber(topic, group_id="smoke", auto_offset_reset="earliest")
    async def handle(body: str) -> None:
        got.append(body)
        if len(got) == 2:
            done.set()

    async with broker:
        await broker.start()
        for i in range(2):
            await broker.publish(f"c{i}", topic=topic)
        await asyncio.wait_for(done.wait(), 30)

    assert got == ["c0", "c1"]
    assert log_range(kafka_server.url, topic) == (0, 2)


@pytest.fixture
async def adapter() -> AsyncIterator[ConfluentAdapter]:
    made = ConfluentAdapter()
    yield made
    await made.aclose()


async def test_truncate_moves_the_log_start_just_past_the_message(
    kafka_server: Any, adapter: ConfluentAdapter
) -> None:
    topic = unique("c-truncate")
    produce(kafka_server.url, topic, 5)
    async with consumed(kafka_server.url, topic, 5) as msgs:
        result = await adapter.delete(msgs[2])
        again = await adapter.delete(msgs[1])

    assert result == msgdel.DeleteResult(
        "confluent", f"{topic}[0]", ("2",), Semantics.PREFIX, Outcome.DELETED, 3
    )
    assert (again.outcome, again.removed) == (Outcome.ALREADY_GONE, 0)
    assert log_range(kafka_server.url, topic) == (3, 5)
    assert [offset for offset, _, _ in read_all(kafka_server.url, topic)] == [3, 4]


async def test_require_exact_is_refused_before_any_request(
    kafka_server: Any, adapter: ConfluentAdapter
) -> None:
    reg = msgdel.Registry()
    reg.register(KafkaMessage, adapter, replace=True)
    topic = unique("c-exact")
    produce(kafka_server.url, topic, 2)
    async with consumed(kafka_server.url, topic, 2) as msgs:
        with pytest.raises(UnsupportedDeletion, match="PREFIX"):
            await msgdel.delete(msgs[1], registry=reg, require=Semantics.EXACT)

    assert log_range(kafka_server.url, topic) == (0, 2)


async def test_protect_groups_stops_at_a_lagging_group_until_it_commits(
    kafka_server: Any,
) -> None:
    topic = unique("c-protect")
    produce(kafka_server.url, topic, 4)
    commit(kafka_server.url, "lagging", topic, 1)
    adapter = ConfluentAdapter(protect_groups=True)
    try:
        async with consumed(kafka_server.url, topic, 4) as msgs:
            capped = await adapter.delete(msgs[3])
            assert log_range(kafka_server.url, topic) == (1, 4)
            commit(kafka_server.url, "lagging", topic, 4)
            caught_up = await adapter.delete(msgs[3])
    finally:
        await adapter.aclose()

    assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
    assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 3)
    assert log_range(kafka_server.url, topic) == (4, 4)


async def test_tombstone_on_a_compacted_topic_writes_a_null_value_under_the_key(
    kafka_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    topic = unique("c-compacted")
    create_topic(kafka_server.url, topic, configs={"cleanup.policy": "compact"})
    produce(kafka_server.url, topic, 2, key=b"user-7")
    adapter = ConfluentAdapter("tombstone")
    try:
        async with consumed(kafka_server.url, topic, 2) as msgs:
            with caplog.at_level(logging.WARNING, "msgdel.kafka"):
                result = await adapter.delete(msgs[1])
    finally:
        await adapter.aclose()

    assert result == msgdel.DeleteResult(
        "confluent", f"{topic}[0]", ("1",), Semantics.TOMBSTONE, Outcome.DEFERRED, 0
    )
    assert read_all(kafka_server.url, topic)[-1] == (2, b"user-7", None)
    assert log_range(kafka_server.url, topic) == (0, 3)
    assert "without 'compact'" not in caplog.text


async def test_a_keyless_message_cannot_be_tombstoned(kafka_server: Any) -> None:
    topic = unique("c-keyless")
    produce(kafka_server.url, topic, 1)
    adapter = ConfluentAdapter("tombstone")
    try:
        async with consumed(kafka_server.url, topic, 1) as msgs:
            with pytest.raises(NotDeletable, match="no key"):
                await adapter.delete(msgs[0])
    finally:
        await adapter.aclose()

    assert log_range(kafka_server.url, topic) == (0, 1)


async def test_truncating_a_compact_only_topic_is_unsupported(
    kafka_server: Any, adapter: ConfluentAdapter
) -> None:
    topic = unique("c-compactonly")
    create_topic(kafka_server.url, topic, configs={"cleanup.policy": "compact"})
    produce(kafka_server.url, topic, 1, key=b"k")
    async with consumed(kafka_server.url, topic, 1) as msgs:
        with pytest.raises(UnsupportedDeletion, match="tombstone"):
            await adapter.delete(msgs[0])

    assert log_range(kafka_server.url, topic) == (0, 1)


async def test_delete_many_truncates_partitions_led_by_different_brokers(
    kafka_cluster: Any, adapter: ConfluentAdapter
) -> None:
    topic = unique("c-leaders")
    create_topic(kafka_cluster.url, topic, assignment=[[1, 2], [2, 3], [3, 1]])
    for partition in range(3):
        produce(kafka_cluster.url, topic, 3, partition=partition)
    async with consumed(kafka_cluster.url, topic, 9) as msgs:
        chosen = [m for m in msgs if m.raw_message.offset() == 0]
        results = await adapter.delete_many(chosen)

    assert sorted(r.target for r in results) == [f"{topic}[{p}]" for p in range(3)]
    assert all((r.outcome, r.removed) == (Outcome.DELETED, 1) for r in results)
    for partition in range(3):
        assert log_range(kafka_cluster.url, topic, partition) == (1, 3)


async def test_messages_of_the_in_memory_test_broker_are_skipped() -> None:
    broker = KafkaBroker()
    results: list[msgdel.DeleteResult] = []

    @broker.subscriber("in-memory", auto_offset_reset="earliest")
    async def handle(body: str, message: Consumed) -> None:
        results.append(await msgdel.delete(message))

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish("hello", "in-memory")

    assert [(r.broker, r.outcome) for r in results] == [("confluent", Outcome.SKIPPED)]


async def test_a_stopped_broker_fails_retryably_and_the_same_delete_succeeds_after_restart(
    own_kafka: KafkaServer,
) -> None:
    topic = unique("c-down")
    produce(own_kafka.url, topic, 3)
    adapter = ConfluentAdapter(timeout=3)
    try:
        async with consumed(own_kafka.url, topic, 3) as msgs:
            # Connect the adapter's clients (retried: a cold broker may answer this call late).
            await retried(adapter.delete, msgs[0])
            run = await delete_across_restart(adapter.delete, msgs[1], own_kafka)
    finally:
        await adapter.aclose()

    assert run.failure.retryable, run.failure
    assert run.seconds < 10  # the adapter's timeout (3s) bounds it, not the client's 40-60s
    assert (run.result.outcome, run.result.removed) == (Outcome.DELETED, 1)
    assert log_range(own_kafka.url, topic) == (2, 3)
