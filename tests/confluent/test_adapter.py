"""The confluent-kafka adapter's own specs against the test bed's real Kafka (single node and
cluster).

They are the Kafka specs both clients share (tests/kafka_family.py), and what only this
client needs; the conformance kit runs in test_conformance.py.
"""

from __future__ import annotations

import asyncio

from msgdel import Outcome
from tests import kafka_family as family
from tests.kafka_family import consuming, unique


class TestConfluentAdapter(family.KafkaSpecs):
    """ConfluentAdapter (confluent-kafka)."""

    async def coordinator_of(self, server: family.Server, group: str) -> int:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": server.url})
        described = await asyncio.wrap_future(admin.describe_consumer_groups([group])[group])
        return int(described.coordinator.id)

    async def test_more_groups_than_one_client_caches_coordinators_for_are_each_read(
        self, client: family.KafkaClient, kafka_server: family.Server
    ) -> None:
        """librdkafka caches the coordinators of 11 groups per client: the adapter reads
        more groups through several clients, each always reading the same ten at most, and
        every group still caps every call (here the one lagging among 24)."""
        from msgdel.adapters.confluent import GROUPS_PER_READER

        topic = unique("manygroups")
        await client.produce(kafka_server, topic, [None] * 4)
        groups = [unique(f"reader{n:02}") for n in range(24)]
        lagging = groups[17]
        for group in groups:
            await client.commit(kafka_server, group, topic, 2 if group == lagging else 4)
        adapter = client.adapter()
        try:
            async with consuming(client, kafka_server, topic, 4) as running:
                first = await adapter.delete(running.messages[3])
                again = await adapter.delete(running.messages[3])
                await client.commit(kafka_server, lagging, topic, 4)
                caught_up = await adapter.delete(running.messages[3])
            (connection,) = adapter._connections.values()
            placed = connection.reader_of_group
            load = [list(placed.values()).count(i) for i in range(len(connection.readers))]
        finally:
            await adapter.aclose()

        assert (first.outcome, first.removed) == (Outcome.DEFERRED, 2)
        assert (again.outcome, again.removed) == (Outcome.DEFERRED, 0)
        assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 2)
        assert await client.log_range(kafka_server, topic) == (4, 4)
        assert set(groups) <= set(placed)
        assert len(load) >= 3
        assert max(load) <= GROUPS_PER_READER
