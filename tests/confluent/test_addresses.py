"""Deleting Kafka offsets by address through confluent-kafka (`adapter=ConfluentAdapter()`),
against the test bed's real Kafka. The address code is the aiokafka adapter's
(tests/kafka/test_addresses.py specifies it in full); these specs cover what confluent-kafka
does itself: the URL's client, a caller's `AdminClient`, and the cluster checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from confluent_kafka.admin import AdminClient

import msgdel
from msgdel import DeleteResult, DeletionFailed, NotDeletable, Outcome, Semantics
from msgdel.adapters.confluent import ConfluentAdapter, Truncation
from msgdel.address import KafkaOffset
from tests.kafka_family import KafkaClient, Server, unique
from tests.testbed.process import free_port


def url(server: Server) -> str:
    return f"kafka://{server.url}"


@pytest.fixture
async def adapter() -> AsyncIterator[ConfluentAdapter]:
    """A default adapter (truncate, protecting every group), closed after the test."""
    made = ConfluentAdapter()
    try:
        yield made
    finally:
        await made.aclose()


async def test_an_offset_deleted_by_url_truncates_its_partition_up_to_it_and_nothing_after(
    client: KafkaClient, kafka_server: Server, adapter: ConfluentAdapter
) -> None:
    topic = unique("addr")
    await client.create_topic(kafka_server, topic, assignment=[[1], [1]])
    await client.produce(kafka_server, topic, [None] * 4)
    await client.produce(kafka_server, topic, [None] * 2, partition=1)

    (result,) = await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 1)],
                                       adapter=adapter)  # fmt: skip

    assert result == DeleteResult(
        "confluent", f"{topic}[0]", ("1",), Semantics.PREFIX, Outcome.DELETED, 2
    )
    assert await client.read_all(kafka_server, topic) == [(2, None, b"m2"), (3, None, b"m3")]
    assert await client.log_range(kafka_server, topic, 1) == (0, 2)  # the other partition


async def test_on_a_callers_client_a_missing_topic_partition_or_record_is_refused_alone(
    client: KafkaClient, kafka_server: Server, adapter: ConfluentAdapter
) -> None:
    topic, missing = unique("known"), unique("missing")
    await client.produce(kafka_server, topic, [None] * 3)
    await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 0)], adapter=adapter)
    admin = AdminClient({"bootstrap.servers": kafka_server.url})
    addresses = [
        KafkaOffset(missing, 0, 0),
        KafkaOffset(topic, 2, 0),
        KafkaOffset(topic, 0, 3),
        KafkaOffset(topic, 0, 0),
        KafkaOffset(topic, 0, 1),
    ]

    outcomes = await msgdel.delete_at(admin, addresses, adapter=adapter, return_exceptions=True)

    no_topic, no_partition, ahead, gone, deleted = outcomes
    for refused, says in ((no_topic, f"no topic {missing!r}"), (no_partition, "no partition 2"),
                          (ahead, "no record at offset 3 yet")):  # fmt: skip
        assert isinstance(refused, NotDeletable)
        assert says in str(refused)
    assert isinstance(gone, DeleteResult)
    assert gone.outcome is Outcome.ALREADY_GONE
    assert isinstance(deleted, DeleteResult)
    assert (deleted.outcome, deleted.removed) == (Outcome.DELETED, 1)
    assert await client.log_range(kafka_server, topic) == (2, 3)
    assert missing not in admin.list_topics(timeout=10).topics  # asking did not create it


async def test_every_group_caps_the_truncation_by_default_and_preview_names_it(
    client: KafkaClient, kafka_server: Server, adapter: ConfluentAdapter
) -> None:
    topic, group = unique("held"), unique("billing")
    await client.produce(kafka_server, topic, [None] * 5)
    await client.commit(kafka_server, group, topic, 2)
    address = KafkaOffset(topic, 0, 3)

    assert await adapter.preview(url(kafka_server), [address]) == [
        Truncation(topic, 0, 0, 2, 2, group)
    ]
    (capped,) = await msgdel.delete_at(url(kafka_server), [address], adapter=adapter)
    assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 2)
    opt_out = ConfluentAdapter(protect_groups=False)
    try:
        (forced,) = await msgdel.delete_at(url(kafka_server), [address], adapter=opt_out)
    finally:
        await opt_out.aclose()
    assert (forced.outcome, forced.removed) == (Outcome.DELETED, 2)
    assert await client.log_range(kafka_server, topic) == (4, 5)


async def test_a_url_that_cannot_be_reached_fails_retryably_without_its_password() -> None:
    where = f"kafka://operator:hunter2@127.0.0.1:{free_port()}"

    (failed,) = await msgdel.delete_at(
        where, [KafkaOffset("orders", 0, 1)], adapter=ConfluentAdapter(timeout=1),
        return_exceptions=True,
    )  # fmt: skip

    assert isinstance(failed, DeletionFailed)
    assert failed.retryable
    assert "hunter2" not in str(failed)
    assert "hunter2" not in repr(failed)
