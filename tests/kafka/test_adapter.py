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

    async def test_a_batch_longer_than_its_turns_for_the_group_read_is_capped_all_the_same(
        self, client: family.KafkaClient, kafka_server: family.Server
    ) -> None:
        """Preparing a batch yields to the event loop only until the group read's requests
        have left (`read_turns`); its answers are read after, while the log starts are
        fetched, and cap a batch of any length."""
        from msgdel.adapters._kafka_common import YIELD_EVERY
        from msgdel.adapters.kafka import KafkaAdapter

        records = 2 * KafkaAdapter.read_turns * YIELD_EVERY
        topic = family.unique("longbatch")
        await client.produce(kafka_server, topic, [None] * records)
        await client.commit(kafka_server, family.unique("billing"), topic, records // 2)
        adapter = client.adapter()
        try:
            async with family.consuming(client, kafka_server, topic, records) as running:
                results = await adapter.delete_many(running.messages)
        finally:
            await adapter.aclose()
        outcomes = [r.outcome for r in results]
        half = records // 2
        assert outcomes == [Outcome.DELETED] * half + [Outcome.DEFERRED] * half
        assert await client.log_range(kafka_server, topic) == (half, records)


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


def test_the_offset_fetch_decoder_reads_long_lengths_and_skips_tagged_fields() -> None:
    """Counts and strings of 128 or more take several varint bytes; tagged fields, which
    Kafka may add to any flexible structure, are skipped, whatever they hold."""
    import struct
    from io import BytesIO

    from msgdel.adapters.kafka import MultiGroupOffsetFetch

    assert MultiGroupOffsetFetch is not None
    response_type = MultiGroupOffsetFetch(["g"], [("t", 0)]).prepare({9: (1, 9)}).RESPONSE_TYPE
    topic = "t" * 300
    groups = [
        (f"group-{n}", [(topic, [(p, 10 * n + p, 1, "m" * 200 if p else None, 0, {})
                                 for p in range(130)], {})], 0, {})
        for n in range(140)
    ]  # fmt: skip
    wire = response_type.SCHEMA.encode([5, groups, {}])
    decoded = response_type.decode(BytesIO(wire))
    assert (decoded.throttle_time_ms, decoded.groups) == (5, groups)

    tags = b"\x02\x01\x02ab\x09\x00"  # two tagged fields: tag 1 (2 bytes), tag 9 (empty)
    wire = (
        struct.pack(">i", 0)
        + b"\x02\x02g"  # one group, "g"
        + b"\x02\x02t"  # one topic, "t"
        + b"\x02" + struct.pack(">iqi", 3, 42, 7) + b"\x01" + struct.pack(">h", 0) + tags
        + tags  # the topic's
        + struct.pack(">h", 0) + tags  # the group's error code and tags
        + tags  # the response's
    )  # fmt: skip
    decoded = response_type.decode(BytesIO(wire))
    assert decoded.groups == [("g", [("t", [(3, 42, 7, "", 0, {})], {})], 0, {})]
