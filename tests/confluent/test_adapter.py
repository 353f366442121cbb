"""The confluent-kafka adapter's own specs against the test bed's real Kafka (single node and
cluster).

They are the Kafka specs both clients share (tests/kafka_family.py); the conformance kit runs
in test_conformance.py.
"""

from __future__ import annotations

import asyncio

from tests import kafka_family as family


class TestConfluentAdapter(family.KafkaSpecs):
    """ConfluentAdapter (confluent-kafka)."""

    async def coordinator_of(self, server: family.Server, group: str) -> int:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": server.url})
        described = await asyncio.wrap_future(admin.describe_consumer_groups([group])[group])
        return int(described.coordinator.id)
