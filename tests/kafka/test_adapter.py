"""The aiokafka Kafka adapter against the test bed's real Apache Kafka (single node and cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage as Consumed
from faststream.kafka.message import KafkaAckableMessage, KafkaMessage

import msgdel
from msgdel import NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.kafka import KafkaAdapter
from tests.faults import delete_across_restart, retried
from tests.testbed.kafka import KafkaServer

pytestmark = pytest.mark.kafka


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_topic(
    servers: str | list[str],
    topic: str,
    *,
    partitions: int = 1,
    assignment: dict[int, list[int]] | None = None,
    configs: dict[str, str] | None = None,
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        if assignment:
            new = NewTopic(topic, -1, -1, replica_assignments=assignment, topic_configs=configs)
        else:
            new = NewTopic(topic, partitions, 1, topic_configs=configs or {})
        await admin.create_topics([new])
    finally:
        await admin.close()


async def produce(
    servers: str | list[str],
    topic: str,
    count: int,
    *,
    key: bytes | None = None,
    partition: int = 0,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        for i in range(count):
            await producer.send_and_wait(topic, f"m{i}".encode(), key=key, partition=partition)
    finally:
        await producer.stop()


async def log_range(servers: str | list[str], topic: str, partition: int = 0) -> tuple[int, int]:
    """(log start offset, log end offset) as the broker reports them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


async def read_all(servers: str | list[str], topic: str) -> list[tuple[int, bytes | None, Any]]:
    """Every record still readable in partition 0: (offset, key, value)."""
    start, end = await log_range(servers, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    got: list[tuple[int, bytes | None, Any]] = []
    try:
        while start < end and (not got or got[-1][0] < end - 1):
            batch = await consumer.getmany(tp, timeout_ms=2000)
            got += [(r.offset, r.key, r.value) for r in batch.get(tp, [])]
    finally:
        await consumer.stop()
    return got


async def commit(servers: str | list[str], group: str, topic: str, offset: int) -> None:
    # No auto-commit: on stop it would commit the position this consumer looked up (the old
    # committed offset), undoing the commit below if that lookup finished first.
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.commit({tp: OffsetAndMetadata(offset, "")})
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def consumed(
    servers: str | list[str],
    topic: str,
    count: int,
    *,
    batch: bool = False,
    group: str = "main",
    **subscriber: Any,
) -> AsyncIterator[list[Any]]:
    """A running FastStream subscriber and the first ``count`` records it consumed."""
    broker = KafkaBroker(servers)
    messages: list[Any] = []
    done = asyncio.Event()
    options: dict[str, Any] = {"group_id": group, "auto_offset_reset": "earliest", **subscriber}
    if batch:
        options.update(batch=True, max_records=count, batch_timeout_ms=500)

    @broker.subscriber(topic, **options)
    async def handle(body: Any, message: Consumed) -> None:
        messages.append(message)
        size = sum(len(m.raw_message) if isinstance(m.raw_message, tuple) else 1 for m in messages)
        if size >= count:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
        yield messages


@pytest.fixture
async def registry() -> AsyncIterator[tuple[msgdel.Registry, KafkaAdapter]]:
    """A registry whose Kafka adapter is closed after the test."""
    adapter = KafkaAdapter()
    reg = msgdel.Registry()
    reg.register(KafkaMessage, adapter, replace=True)
    yield reg, adapter
    await adapter.aclose()


async def test_truncate_moves_the_log_start_just_past_the_message(
    kafka_server: Any, registry: Any
) -> None:
    reg, _ = registry
    topic = unique("truncate")
    await produce(kafka_server.url, topic, 5)
    async with consumed(kafka_server.servers, topic, 5) as msgs:
        result = await msgdel.delete(msgs[2], registry=reg)

    assert result == msgdel.DeleteResult(
        "kafka", f"{topic}[0]", ("2",), Semantics.PREFIX, Outcome.DELETED, 3
    )
    assert await log_range(kafka_server.url, topic) == (3, 5)
    assert [offset for offset, _, _ in await read_all(kafka_server.url, topic)] == [3, 4]


async def test_an_ackable_message_is_truncated_just_past_its_offset(
    kafka_server: Any, registry: Any
) -> None:
    reg, _ = registry
    topic = unique("ackable")
    await produce(kafka_server.url, topic, 4)
    async with consumed(kafka_server.servers, topic, 4, ack_policy=AckPolicy.MANUAL) as msgs:
        assert all(type(m) is KafkaAckableMessage for m in msgs)
        result = await msgdel.delete(msgs[1], registry=reg)

    assert result == msgdel.DeleteResult(
        "kafka", f"{topic}[0]", ("1",), Semantics.PREFIX, Outcome.DELETED, 2
    )
    assert await log_range(kafka_server.url, topic) == (2, 4)


async def test_a_message_before_the_log_start_is_already_gone(
    kafka_server: Any, registry: Any
) -> None:
    reg, _ = registry
    topic = unique("gone")
    await produce(kafka_server.url, topic, 3)
    async with consumed(kafka_server.servers, topic, 3) as msgs:
        await msgdel.delete(msgs[1], registry=reg)
        again = await msgdel.delete(msgs[0], registry=reg)

    assert (again.outcome, again.removed, again.ids) == (Outcome.ALREADY_GONE, 0, ("0",))
    assert await log_range(kafka_server.url, topic) == (2, 3)


async def test_require_exact_is_refused_before_any_request(
    kafka_server: Any, registry: Any
) -> None:
    reg, _ = registry
    topic = unique("exact")
    await produce(kafka_server.url, topic, 2)
    async with consumed(kafka_server.servers, topic, 2) as msgs:
        with pytest.raises(UnsupportedDeletion, match="PREFIX"):
            await msgdel.delete(msgs[1], registry=reg, require=Semantics.EXACT)

    assert await log_range(kafka_server.url, topic) == (0, 2)


async def test_protect_groups_stops_at_a_lagging_group_until_it_commits(
    kafka_server: Any,
) -> None:
    topic = unique("protect")
    await produce(kafka_server.url, topic, 4)
    await commit(kafka_server.url, "lagging", topic, 1)
    adapter = KafkaAdapter(protect_groups=True)
    try:
        async with consumed(kafka_server.servers, topic, 4) as msgs:
            capped = await adapter.delete(msgs[3])
            assert await log_range(kafka_server.url, topic) == (1, 4)

            await commit(kafka_server.url, "lagging", topic, 4)
            caught_up = await adapter.delete(msgs[3])
    finally:
        await adapter.aclose()

    assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
    assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 3)
    assert await log_range(kafka_server.url, topic) == (4, 4)


async def test_tombstone_on_a_compacted_topic_writes_a_null_value_under_the_key(
    kafka_server: Any,
) -> None:
    topic = unique("compacted")
    await create_topic(kafka_server.url, topic, configs={"cleanup.policy": "compact"})
    await produce(kafka_server.url, topic, 2, key=b"user-7")
    adapter = KafkaAdapter("tombstone")
    try:
        async with consumed(kafka_server.servers, topic, 2) as msgs:
            result = await adapter.delete(msgs[1])
    finally:
        await adapter.aclose()

    assert result == msgdel.DeleteResult(
        "kafka", f"{topic}[0]", ("1",), Semantics.TOMBSTONE, Outcome.DEFERRED, 0
    )
    records = await read_all(kafka_server.url, topic)
    assert records[-1] == (2, b"user-7", None)
    assert await log_range(kafka_server.url, topic) == (0, 3)


async def test_tombstone_on_a_delete_policy_topic_warns_that_nothing_will_be_removed(
    kafka_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    topic = unique("notcompacted")
    await produce(kafka_server.url, topic, 1, key=b"k")
    adapter = KafkaAdapter("tombstone")
    try:
        async with consumed(kafka_server.servers, topic, 1) as msgs:
            with caplog.at_level(logging.WARNING, "msgdel.kafka"):
                await adapter.delete(msgs[0])
    finally:
        await adapter.aclose()

    assert "without 'compact'" in caplog.text
    assert await log_range(kafka_server.url, topic) == (0, 2)


async def test_a_keyless_message_cannot_be_tombstoned(kafka_server: Any) -> None:
    topic = unique("keyless")
    await produce(kafka_server.url, topic, 1)
    adapter = KafkaAdapter("tombstone")
    try:
        async with consumed(kafka_server.servers, topic, 1) as msgs:
            with pytest.raises(NotDeletable, match="no key"):
                await adapter.delete(msgs[0])
    finally:
        await adapter.aclose()

    assert await log_range(kafka_server.url, topic) == (0, 1)


async def test_truncating_a_compact_only_topic_is_unsupported(kafka_server: Any) -> None:
    topic = unique("compactonly")
    await create_topic(kafka_server.url, topic, configs={"cleanup.policy": "compact"})
    await produce(kafka_server.url, topic, 1, key=b"k")
    adapter = KafkaAdapter()
    try:
        async with consumed(kafka_server.servers, topic, 1) as msgs:
            with pytest.raises(UnsupportedDeletion, match="tombstone"):
                await adapter.delete(msgs[0])
    finally:
        await adapter.aclose()

    assert await log_range(kafka_server.url, topic) == (0, 1)


async def test_a_batch_message_is_truncated_once_up_to_its_last_record(
    kafka_server: Any, registry: Any
) -> None:
    reg, _ = registry
    topic = unique("batch")
    await produce(kafka_server.url, topic, 4)
    async with consumed(kafka_server.servers, topic, 4, batch=True) as batches:
        results = await msgdel.delete_many(batches, registry=reg)

    offsets = [int(i) for r in results for i in r.ids]
    assert offsets == [0, 1, 2, 3]
    assert sum(r.removed for r in results) == 4
    assert {r.outcome for r in results} == {Outcome.DELETED}
    assert await log_range(kafka_server.url, topic) == (4, 4)


async def test_delete_many_truncates_partitions_led_by_different_brokers(
    kafka_cluster: Any,
) -> None:
    topic = unique("leaders")
    await create_topic(kafka_cluster.servers, topic, assignment={0: [1, 2], 1: [2, 3], 2: [3, 1]})
    for partition in range(3):
        await produce(kafka_cluster.servers, topic, 3, partition=partition)
    adapter = KafkaAdapter()
    try:
        async with consumed(kafka_cluster.servers, topic, 9) as msgs:
            # keep the second record of each partition and everything after it
            chosen = [m for m in msgs if m.raw_message.offset == 0]
            results = await adapter.delete_many(chosen)
    finally:
        await adapter.aclose()

    assert sorted(r.target for r in results) == [f"{topic}[{p}]" for p in range(3)]
    assert all((r.outcome, r.removed) == (Outcome.DELETED, 1) for r in results)
    for partition in range(3):
        assert await log_range(kafka_cluster.servers, topic, partition) == (1, 3)


async def test_messages_of_the_in_memory_test_broker_are_skipped() -> None:
    broker = KafkaBroker()
    results: list[msgdel.DeleteResult] = []

    @broker.subscriber("in-memory")
    async def handle(body: str, message: Consumed) -> None:
        results.append(await msgdel.delete(message))

    async with TestKafkaBroker(broker) as test_broker:
        await test_broker.publish("hello", "in-memory")

    assert [(r.broker, r.outcome) for r in results] == [("kafka", Outcome.SKIPPED)]


async def test_delete_follows_the_partition_leader_when_its_broker_stops(
    kafka_cluster: Any,
) -> None:
    topic = unique("failover")
    await create_topic(kafka_cluster.servers, topic, assignment={0: [1, 2, 3]})
    await produce(kafka_cluster.servers, topic, 3)
    survivors = [kafka_cluster.node(2).url, kafka_cluster.node(3).url]
    adapter = KafkaAdapter()
    try:
        async with consumed(kafka_cluster.servers, topic, 3) as msgs:
            first = await adapter.delete(msgs[0])  # the adapter now knows broker 1 as leader
        # FastStream's consumer stops first: under test are msgdel's own clients, and an
        # aiokafka group consumer can stall for good in its coordinator loop across a fault.
        await asyncio.to_thread(kafka_cluster.node(1).stop)
        try:
            second = await adapter.delete(msgs[1])
            assert await log_range(survivors, topic) == (2, 3)
        finally:
            await asyncio.to_thread(kafka_cluster.node(1).start)
    finally:
        await adapter.aclose()

    assert (first.outcome, first.removed) == (Outcome.DELETED, 1)
    assert (second.outcome, second.removed) == (Outcome.DELETED, 1)


async def test_a_stopped_broker_fails_retryably_and_the_same_delete_succeeds_after_restart(
    own_kafka: KafkaServer,
) -> None:
    topic = unique("down")
    await produce(own_kafka.url, topic, 3)
    adapter = KafkaAdapter(timeout=3)
    try:
        async with consumed(own_kafka.servers, topic, 3) as msgs:
            # Connect the adapter's clients (retried: a cold broker may answer this call late).
            await retried(adapter.delete, msgs[0])
        # FastStream's consumer stops first (see the failover test above).
        run = await delete_across_restart(adapter.delete, msgs[1], own_kafka)
    finally:
        await adapter.aclose()

    assert run.failure.retryable, run.failure
    assert run.seconds < 10  # the adapter's timeout (3s) bounds it, not the client's 40-60s
    assert (run.result.outcome, run.result.removed) == (Outcome.DELETED, 1)
    assert await log_range(own_kafka.url, topic) == (2, 3)
