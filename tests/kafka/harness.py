"""The shared Kafka suite's client, through aiokafka and ``faststream.kafka``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.message import KafkaAckableMessage, KafkaMessage

from msgdel.adapters.kafka import KafkaAdapter
from tests.kafka_family import KafkaClient, Record, Server


class Aiokafka(KafkaClient):
    broker_name = "kafka"
    adapter_class = KafkaAdapter
    message_type = KafkaMessage
    broker_class = KafkaBroker
    test_broker_class = TestKafkaBroker
    ackable_type = KafkaAckableMessage
    ackable_options: ClassVar[dict[str, Any]] = {"ack_policy": AckPolicy.ACK}  # not ACK_FIRST
    batch_options: ClassVar[dict[str, Any]] = {"batch_timeout_ms": 500}

    def bootstrap(self, server: Server) -> list[str]:
        return list(server.servers)  # FastStream's KafkaBroker takes a list, not a CSV

    def record(self, raw: Any) -> tuple[int, int, bytes | None]:
        return raw.partition, raw.offset, raw.key

    async def create(
        self, server: Server, topic: str, replicas: list[list[int]], configs: dict[str, str]
    ) -> None:
        if replicas:
            assignment = dict(enumerate(replicas))
            new = NewTopic(topic, -1, -1, replica_assignments=assignment, topic_configs=configs)
        else:
            new = NewTopic(topic, 1, 1, topic_configs=configs)
        admin = AIOKafkaAdminClient(bootstrap_servers=server.servers)
        await admin.start()
        try:
            await admin.create_topics([new])
        finally:
            await admin.close()

    async def produce(
        self, server: Server, topic: str, keys: Sequence[bytes | None], *, partition: int = 0
    ) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=server.servers)
        await producer.start()
        try:
            sent = [
                await producer.send(topic, f"m{i}".encode(), key=key, partition=partition)
                for i, key in enumerate(keys)
            ]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    async def log_range(self, server: Server, topic: str, partition: int = 0) -> tuple[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=server.servers)
        await consumer.start()
        try:
            tp = TopicPartition(topic, partition)
            start = (await consumer.beginning_offsets([tp]))[tp]
            return start, (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()

    async def read_all(self, server: Server, topic: str, partition: int = 0) -> list[Record]:
        start, end = await self.log_range(server, topic, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=server.servers, auto_offset_reset="earliest")
        await consumer.start()
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        got: list[Record] = []
        try:
            while start < end and (not got or got[-1][0] < end - 1):
                batch = await consumer.getmany(tp, timeout_ms=2000)
                got += [(r.offset, r.key, r.value) for r in batch.get(tp, [])]
        finally:
            await consumer.stop()
        return got

    async def commit(self, server: Server, group: str, topic: str, offset: int) -> None:
        # No auto-commit: on stop it would commit the position this consumer looked up (the
        # old committed offset), undoing the commit below if that lookup finished first.
        consumer = AIOKafkaConsumer(
            bootstrap_servers=server.servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(offset, "")})
        finally:
            await consumer.stop()
