"""The aiokafka adapter's own specs against the test bed's real Kafka (single node and cluster).

They are the Kafka specs both clients share (tests/kafka_family.py), and what only aiokafka's
adapter does; the conformance kit runs in test_conformance.py.
"""

from __future__ import annotations

from typing import Any

from msgdel import Outcome
from tests import kafka_family as family


class TestKafkaAdapter(family.KafkaSpecs):
    """KafkaAdapter (aiokafka)."""

    async def coordinator_of(self, server: family.Server, group: str) -> int:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=server.servers)
        await admin.start()
        try:
            return int(await admin.find_coordinator(group))
        finally:
            await admin.close()

    async def test_without_multi_group_offset_fetch_each_group_is_read_on_its_own(
        self, client: family.KafkaClient, kafka_server: family.Server, monkeypatch: Any
    ) -> None:
        """Where aiokafka has no request builders (before 0.13), the adapter sends one
        OffsetFetch per group to its coordinator, and caps the truncation all the same."""
        import msgdel.adapters.kafka as kafka

        monkeypatch.setattr(kafka, "MultiGroupOffsetFetch", None)
        topic = family.unique("pergroup")
        await client.produce(kafka_server, topic, [None] * 4)
        await client.commit(kafka_server, family.unique("billing"), topic, 1)
        await client.commit(kafka_server, family.unique("shipping"), topic, 3)
        adapter = client.adapter()
        try:
            async with family.consuming(client, kafka_server, topic, 4) as running:
                capped = await adapter.delete(running.messages[3])
        finally:
            await adapter.aclose()
        assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
        assert await client.log_range(kafka_server, topic) == (1, 4)


def test_the_multi_group_offset_fetch_codec_matches_aiokafkas_generic_one() -> None:
    """OffsetFetch v8 is encoded and decoded by hand for speed; aiokafka's generic codec,
    driven by the same schemas, says what the bytes must be."""
    from io import BytesIO

    from msgdel.adapters.kafka import MultiGroupOffsetFetch

    assert MultiGroupOffsetFetch is not None
    request = MultiGroupOffsetFetch(["billing", "shipping-é"], [("orders", 0), ("orders", 3)])
    struct = request.prepare({9: (1, 9)})
    assert struct.encode() == struct.SCHEMA.encode([struct.groups, False, {}])

    response_type = struct.RESPONSE_TYPE
    groups = [
        ("billing", [("orders", [(0, 42, 7, None, 0, {}), (3, -1, -1, "meta", 0, {})], {})], 0, {}),
        ("shipping-é", [], 16, {}),
    ]
    wire = response_type.SCHEMA.encode([0, groups, {}])
    assert response_type.decode(BytesIO(wire)).groups == groups
