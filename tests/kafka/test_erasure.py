"""Erasure by key on Kafka (``msgdel.erasure.erase`` with ``KafkaKey``), against the test bed's
Kafka: tombstones on a compacted topic (and compaction, forced by the topic's configs, then
removes the person's values), truncation only on request on a topic that is not compacted.
Every test reads the topic afterwards with a raw aiokafka consumer."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from msgdel.erasure import ErasureOutcome, KafkaKey, erase

PERSON, OTHER = b"u42", b"u7"
COMPACTING = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "1000",
    "delete.retention.ms": "100",
}
"""A compacted topic whose cleaner runs within seconds of a tombstone (the test bed's broker
checks every second: log.cleaner.backoff.ms=1000)."""


async def topic_of(server: Any, partitions: int, configs: dict[str, str]) -> str:
    topic = f"erase-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=server.servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()
    return topic


async def produce(server: Any, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Each (key, value), acknowledged, with the default partitioner (murmur2 of the key)."""
    producer = AIOKafkaProducer(bootstrap_servers=server.servers)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all(
    server: Any, topic: str, partitions: int = 1
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record the topic's ``partitions`` still hold: (partition, offset, key, value)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=server.servers, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(parts)
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, starts[tp])
        found = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    found.append((tp.partition, record.offset, record.key, record.value))
        return found
    finally:
        await consumer.stop()


def values_of(records: list[Any], key: bytes) -> list[bytes]:
    return [value for _, _, k, value in records if k == key and value is not None]


async def test_tombstones_mark_the_key_and_compaction_removes_its_values(kafka_server: Any) -> None:
    topic = await topic_of(kafka_server, 3, COMPACTING)
    records = [(PERSON if i % 3 == 0 else OTHER + bytes([48 + i]), f"v{i}".encode())
               for i in range(12)]  # fmt: skip
    records.append((OTHER, f"also erase key {PERSON.decode()}".encode()))  # names the person
    await produce(kafka_server, topic, records)

    (dry,) = await erase(f"kafka://{kafka_server.url}", [KafkaKey(topic, PERSON)], dry_run=True)
    assert (dry.outcome, dry.matched, dry.marked) == (ErasureOutcome.DRY_RUN, 4, 0)
    began = time.monotonic()

    (report,) = await erase(f"kafka://{kafka_server.url}", [KafkaKey(topic, PERSON)])

    assert (report.outcome, report.matched, report.marked, report.removed) == (
        ErasureOutcome.MARKED, 4, 4, 0
    )  # fmt: skip
    assert report.gone_by is not None
    assert report.reason is not None
    assert "max.compaction.lag.ms=1000" in report.reason
    after = await read_all(kafka_server, topic, 3)
    assert [v for _, _, k, v in after if k == PERSON][-1] is None  # the tombstone is written
    others = {k: v for _, _, k, v in after if k != PERSON}
    # Roll the tombstone's segment (segment.ms) with a later record, so the cleaner takes it.
    while time.monotonic() - began < 30:
        await asyncio.sleep(0.5)
        await produce(kafka_server, topic, [(b"filler", b"x")])
        now = await read_all(kafka_server, topic, 3)
        if not values_of(now, PERSON):
            break
    assert values_of(now, PERSON) == []  # compaction removed every value of the key
    assert {k: v for _, _, k, v in now if k not in (PERSON, b"filler")} == {
        k: v for k, v in others.items() if k != b"filler"
    }  # everyone else's latest value stays


async def test_a_topic_that_is_not_compacted_is_truncated_only_when_the_caller_opts_in(
    kafka_server: Any,
) -> None:
    topic = await topic_of(kafka_server, 1, {"cleanup.policy": "delete"})
    records = [(PERSON if i in (1, 3) else OTHER, f"v{i}".encode()) for i in range(6)]
    await produce(kafka_server, topic, records)

    (refused,) = await erase(f"kafka://{kafka_server.url}", [KafkaKey(topic, PERSON)])

    assert (refused.outcome, refused.matched) == (ErasureOutcome.NOT_ERASABLE, 2)
    assert refused.removes == (f"{topic}[0]:0-3",)
    assert len(await read_all(kafka_server, topic)) == 6  # nothing was removed

    (truncated,) = await erase(
        f"kafka://{kafka_server.url}", [KafkaKey(topic, PERSON, truncate=True)]
    )

    assert (truncated.outcome, truncated.removed) == (ErasureOutcome.ERASED, 4)
    assert truncated.removes == (f"{topic}[0]:0-3",)
    assert [(o, k) for _, o, k, _ in await read_all(kafka_server, topic)] == [
        (4, OTHER), (5, OTHER)
    ]  # fmt: skip
