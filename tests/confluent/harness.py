"""The shared Kafka suite's client, through confluent-kafka and ``faststream.confluent``.

Set-up and reads use confluent-kafka only, so this runs where aiokafka is not installed. Its
calls block, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from faststream.confluent import KafkaBroker, TestKafkaBroker
from faststream.confluent.message import KafkaMessage

from msgdel.adapters.confluent import ConfluentAdapter
from tests.kafka_family import KafkaClient, Record, Server


class Confluent(KafkaClient):
    broker_name = "confluent"
    adapter_class = ConfluentAdapter
    message_type = KafkaMessage
    broker_class = KafkaBroker
    test_broker_class = TestKafkaBroker

    def bootstrap(self, server: Server) -> str:
        return str(server.url)

    def record(self, raw: Any) -> tuple[int, int, bytes | None]:
        return int(raw.partition()), int(raw.offset()), raw.key()

    async def create(
        self, server: Server, topic: str, replicas: list[list[int]], configs: dict[str, str]
    ) -> None:
        if replicas:
            new = NewTopic(topic, len(replicas), -1, replica_assignment=replicas, config=configs)
        else:
            new = NewTopic(topic, num_partitions=1, replication_factor=1, config=configs)
        admin = AdminClient({"bootstrap.servers": server.url})  # alive until the future resolves
        await asyncio.wrap_future(admin.create_topics([new])[topic])

    async def produce(
        self, server: Server, topic: str, keys: Sequence[bytes | None], *, partition: int = 0
    ) -> None:
        def produce() -> None:
            producer = Producer({"bootstrap.servers": server.url})
            for i, key in enumerate(keys):
                producer.produce(topic, f"m{i}".encode(), key=key, partition=partition)
            assert producer.flush(30) == 0

        await asyncio.to_thread(produce)

    async def log_range(self, server: Server, topic: str, partition: int = 0) -> tuple[int, int]:
        def watermarks() -> tuple[int, int]:
            consumer = Consumer({"bootstrap.servers": server.url, "group.id": "probe"})
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
            finally:
                consumer.close()
            return int(low), int(high)

        return await asyncio.to_thread(watermarks)

    async def read_all(self, server: Server, topic: str, partition: int = 0) -> list[Record]:
        start, end = await self.log_range(server, topic, partition)

        def read() -> list[Record]:
            # No auto-commit: a "reader" group committing would cap protect_groups deletions.
            consumer = Consumer(
                {"bootstrap.servers": server.url, "group.id": "reader", "enable.auto.commit": False}
            )
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            got: list[Record] = []
            try:
                while start < end and (not got or got[-1][0] < end - 1):
                    record = consumer.poll(5)
                    if record is not None and record.error() is None:
                        got.append((record.offset(), record.key(), record.value()))
            finally:
                consumer.close()
            return got

        return await asyncio.to_thread(read)

    async def commit(self, server: Server, group: str, topic: str, offset: int) -> None:
        def commit() -> None:
            consumer = Consumer({"bootstrap.servers": server.url, "group.id": group})
            try:
                consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
            finally:
                consumer.close()

        await asyncio.to_thread(commit)
