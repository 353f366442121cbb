"""The Apache Kafka test bed (single KRaft node and three-node cluster) works through FastStream.

Publishing, consuming and reading the log offsets of the single node is what every case of
the conformance kit does, through both clients (test_conformance.py here and in
tests/confluent); this module checks what the kit does not: restarts, the cluster, set-up.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.testbed.smoke import numbered, round_trip


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _publish_and_consume(
    url: str | list[str], topic: str, count: int, expect: int = 0
) -> list[str]:
    """Publish ``count`` messages, then consume until ``expect`` (default ``count``) arrived."""
    from faststream.kafka import KafkaBroker

    broker = KafkaBroker(url)
    return await round_trip(
        broker,
        broker.subscriber(topic, group_id="smoke", auto_offset_reset="earliest"),
        lambda body: broker.publish(body, topic=topic),
        numbered(count),
        expect=expect or count,
        within=30,
    )


async def _log_offsets(url: str, topic: str) -> tuple[int, int]:
    """(log start offset, log end offset) of partition 0, as the broker reports them."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=url)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return start, end


async def test_consuming_works_after_a_restart(kafka_server: Any) -> None:
    from faststream.kafka import KafkaBroker

    topic = _topic("restart")
    async with KafkaBroker(kafka_server.url) as broker:
        await broker.publish("before", topic=topic)
    await asyncio.to_thread(kafka_server.restart)
    assert await _log_offsets(kafka_server.url, topic) == (0, 1)
    got = await _publish_and_consume(kafka_server.url, topic, 1, expect=2)
    assert got == ["before", "m0"]


async def test_cluster_has_three_brokers_and_spreads_partition_leaders(kafka_cluster: Any) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = _topic("spread")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_cluster.url)
    await admin.start()
    try:
        assignment = {0: [1, 2, 3], 1: [2, 3, 1], 2: [3, 1, 2]}
        await admin.create_topics([NewTopic(topic, -1, -1, replica_assignments=assignment)])
        brokers = (await admin.describe_cluster())["brokers"]
        leaders: dict[int, int] = {}
        for _ in range(50):  # the broker answering may learn of the new topic a moment later
            described = await admin.describe_topics([topic])
            leaders = {p["partition"]: p["leader"] for p in described[0]["partitions"]}
            if len(leaders) == 3 and min(leaders.values()) >= 0:
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    assert sorted(b["node_id"] for b in brokers) == [1, 2, 3]
    assert leaders == {0: 1, 1: 2, 2: 3}


async def test_cluster_serves_a_topic_while_one_broker_restarts(kafka_cluster: Any) -> None:
    topic = _topic("cluster")
    got = await _publish_and_consume(kafka_cluster.servers, topic, 2)
    assert got == ["m0", "m1"]
    await asyncio.to_thread(kafka_cluster.node(2).restart)
    assert kafka_cluster.running
    assert await _log_offsets(kafka_cluster.url, topic) == (0, 2)


def test_missing_jars_say_what_to_run(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.testbed import kafka
    from tests.testbed.process import BrokerUnavailable

    monkeypatch.setattr(kafka, "LIBS", tmp_path / "libs")
    with pytest.raises(BrokerUnavailable, match="scripts/setup"):
        kafka.KafkaServer(tmp_path)


def test_cluster_ids_are_base64url_uuids_that_never_start_with_a_dash() -> None:
    from tests.testbed.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(5000)]  # about 78 would start with "-" by chance
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
