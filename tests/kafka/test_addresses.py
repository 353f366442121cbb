"""Deleting Kafka offsets by address (`msgdel.delete_at`, `KafkaAdapter.preview`) through
aiokafka, against the test bed's real Kafka: the log start offset after, the records after the
offset read back, the consumer groups that keep what they need, and what is refused before
anything is truncated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
from aiokafka.admin import AIOKafkaAdminClient

import msgdel
from msgdel import DeleteResult, DeletionFailed, NotDeletable, Outcome, Semantics
from msgdel.adapters.kafka import KafkaAdapter, Truncation
from msgdel.address import KafkaOffset
from tests.eventually import eventually
from tests.kafka_family import KafkaClient, Partition, Server, deletion_requests, unique
from tests.testbed.process import free_port


def url(server: Server) -> str:
    return f"kafka://{server.url}"


@pytest.fixture
async def admin(kafka_server: Server) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client of the test's own: the client a caller passes."""
    made = AIOKafkaAdminClient(bootstrap_servers=kafka_server.servers)
    await made.start()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
async def adapter() -> AsyncIterator[KafkaAdapter]:
    """A default adapter (truncate, protecting every group), closed after the test."""
    made = KafkaAdapter()
    try:
        yield made
    finally:
        await made.aclose()


async def two_partitions(client: KafkaClient, server: Server, records: tuple[int, int]) -> str:
    """A fresh topic of two partitions holding `records` records (values m0, m1, ...)."""
    topic = unique("addr")
    await client.create_topic(server, topic, assignment=[[1], [1]])
    for partition, count in enumerate(records):
        await client.produce(server, topic, [None] * count, partition=partition)
    return topic


async def test_an_offset_deleted_by_url_truncates_its_partition_up_to_it_and_nothing_after(
    client: KafkaClient, kafka_server: Server
) -> None:
    """Through the default registry, on a URL it connects for the call."""
    topic = await two_partitions(client, kafka_server, (5, 2))

    (result,) = await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 2)])

    assert result == DeleteResult(
        "kafka", f"{topic}[0]", ("2",), Semantics.PREFIX, Outcome.DELETED, 3
    )
    assert await client.log_range(kafka_server, topic) == (3, 5)
    assert await client.read_all(kafka_server, topic) == [(3, None, b"m3"), (4, None, b"m4")]
    assert await client.log_range(kafka_server, topic, 1) == (0, 2)  # the other partition


async def test_on_a_client_each_offset_gets_its_result_in_order_and_a_partition_one_request(
    client: KafkaClient, kafka_server: Server, admin: AIOKafkaAdminClient, adapter: KafkaAdapter
) -> None:
    """The removed count of a partition goes to the address that set its deletion point, as
    for messages; the caller's client is left open."""
    topic = await two_partitions(client, kafka_server, (4, 4))
    addresses = [KafkaOffset(topic, 0, 1), KafkaOffset(topic, 1, 0), KafkaOffset(topic, 0, 2)]

    results = await msgdel.delete_at(admin, addresses, adapter=adapter)

    assert [(r.target, r.ids, r.outcome, r.removed) for r in results] == [
        (f"{topic}[0]", ("1",), Outcome.DELETED, 0),
        (f"{topic}[1]", ("0",), Outcome.DELETED, 1),
        (f"{topic}[0]", ("2",), Outcome.DELETED, 3),
    ]
    assert await client.log_range(kafka_server, topic, 0) == (3, 4)
    assert await client.log_range(kafka_server, topic, 1) == (1, 4)
    for partition in (0, 1):
        assert deletion_requests(kafka_server, Partition(topic, partition)) == 1
    assert topic in await admin.list_topics()


async def test_an_offset_below_the_log_start_is_already_gone(
    client: KafkaClient, kafka_server: Server, adapter: KafkaAdapter
) -> None:
    topic = unique("gone")
    await client.produce(kafka_server, topic, [None] * 3)
    await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 1)], adapter=adapter)

    (gone,) = await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 0)], adapter=adapter)

    assert (gone.outcome, gone.removed) == (Outcome.ALREADY_GONE, 0)
    assert await client.log_range(kafka_server, topic) == (2, 3)


async def test_an_unknown_topic_or_partition_is_not_deletable_naming_it_and_the_rest_is_deleted(
    client: KafkaClient, kafka_server: Server, admin: AIOKafkaAdminClient, adapter: KafkaAdapter
) -> None:
    topic, missing = unique("known"), unique("missing")
    await client.produce(kafka_server, topic, [None] * 2)
    addresses = [KafkaOffset(missing, 0, 0), KafkaOffset(topic, 3, 0), KafkaOffset(topic, 0, 0)]

    no_topic, no_partition, deleted = await msgdel.delete_at(
        admin, addresses, adapter=adapter, return_exceptions=True
    )

    assert isinstance(no_topic, NotDeletable)
    assert f"no topic {missing!r}" in str(no_topic)
    assert isinstance(no_partition, NotDeletable)
    assert "no partition 3" in str(no_partition)
    assert isinstance(deleted, DeleteResult)
    assert (deleted.outcome, deleted.removed) == (Outcome.DELETED, 1)
    assert missing not in await admin.list_topics()  # asking did not create it


async def test_an_offset_at_or_past_the_high_watermark_is_not_deletable_and_nothing_is_truncated(
    client: KafkaClient, kafka_server: Server, adapter: KafkaAdapter
) -> None:
    topic = unique("ahead")
    await client.produce(kafka_server, topic, [None] * 3)

    outcomes = await msgdel.delete_at(
        url(kafka_server),
        [KafkaOffset(topic, 0, 3), KafkaOffset(topic, 0, 7)],
        adapter=adapter,
        return_exceptions=True,
    )

    for outcome, offset in zip(outcomes, (3, 7)):
        assert isinstance(outcome, NotDeletable)
        assert f"no record at offset {offset}" in str(outcome)
        assert "high watermark (the offset the next record gets) is 3" in str(outcome)
    assert await client.log_range(kafka_server, topic) == (0, 3)
    assert deletion_requests(kafka_server, Partition(topic)) == 0


async def test_by_default_every_group_keeps_what_it_has_not_committed_and_the_opt_out_truncates(
    client: KafkaClient, kafka_server: Server, adapter: KafkaAdapter
) -> None:
    """An address has no consumer group of its own: "billing" (committed 1) caps it, below
    "shipping" (3); `protect_groups=False` truncates for every group."""
    topic = unique("held")
    await client.produce(kafka_server, topic, [None] * 5)
    await client.commit(kafka_server, unique("billing"), topic, 1)
    await client.commit(kafka_server, unique("shipping"), topic, 3)
    address = KafkaOffset(topic, 0, 3)

    (capped,) = await msgdel.delete_at(url(kafka_server), [address], adapter=adapter)
    assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
    assert await client.log_range(kafka_server, topic) == (1, 5)

    opt_out = KafkaAdapter(protect_groups=False)
    try:
        (forced,) = await msgdel.delete_at(url(kafka_server), [address], adapter=opt_out)
    finally:
        await opt_out.aclose()
    assert (forced.outcome, forced.removed) == (Outcome.DELETED, 3)
    assert await client.log_range(kafka_server, topic) == (4, 5)


async def test_a_dry_run_leaves_the_partition_as_it_was(
    client: KafkaClient, kafka_server: Server
) -> None:
    topic = unique("dry")
    await client.produce(kafka_server, topic, [None] * 3)

    (result,) = await msgdel.delete_at(url(kafka_server), [KafkaOffset(topic, 0, 2)], dry_run=True)

    assert (result.outcome, result.removed, result.semantics) == (
        Outcome.SKIPPED,
        0,
        Semantics.PREFIX,
    )
    assert await client.log_range(kafka_server, topic) == (0, 3)
    assert deletion_requests(kafka_server, Partition(topic)) == 0


async def test_preview_says_what_each_partition_would_lose_and_the_deletion_does_just_that(
    client: KafkaClient, kafka_server: Server, admin: AIOKafkaAdminClient, adapter: KafkaAdapter
) -> None:
    """ "billing" committed 2 on partition 0 only; an unknown topic truncates nothing and is
    left out of the preview (the deletion reports it)."""
    topic, group = await two_partitions(client, kafka_server, (5, 3)), unique("billing")
    await client.commit(kafka_server, group, topic, 2)
    addresses = [
        KafkaOffset(topic, 0, 3),
        KafkaOffset(topic, 1, 1),
        KafkaOffset(topic, 0, 4),
        KafkaOffset(unique("missing"), 0, 0),
    ]

    plan = await adapter.preview(admin, addresses)
    opt_out = await KafkaAdapter(protect_groups=False).preview(url(kafka_server), addresses)

    assert plan == [Truncation(topic, 0, 0, 2, 2, group), Truncation(topic, 1, 0, 2, 2, None)]
    assert opt_out == [Truncation(topic, 0, 0, 5, 5, None), Truncation(topic, 1, 0, 2, 2, None)]
    assert await client.log_range(kafka_server, topic, 0) == (0, 5)
    assert await client.log_range(kafka_server, topic, 1) == (0, 3)

    outcomes = await msgdel.delete_at(admin, addresses, adapter=adapter, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes] == ["DeleteResult"] * 3 + ["NotDeletable"]
    assert await client.log_range(kafka_server, topic, 0) == (2, 5)
    assert await client.log_range(kafka_server, topic, 1) == (2, 3)


async def test_a_url_that_cannot_be_reached_fails_retryably_without_its_password() -> None:
    where = f"kafka://operator:hunter2@127.0.0.1:{free_port()}"

    (failed,) = await msgdel.delete_at(where, [KafkaOffset("orders", 0, 1)], return_exceptions=True)

    assert isinstance(failed, DeletionFailed)
    assert failed.retryable
    assert "127.0.0.1" in str(failed)
    assert "hunter2" not in str(failed)
    assert "hunter2" not in repr(failed)


async def test_on_a_cluster_url_each_partition_is_truncated_once_on_its_own_leader(
    client: KafkaClient, kafka_cluster: Server, adapter: KafkaAdapter
) -> None:
    """A URL naming the three brokers; each partition is led by another one."""
    topic = unique("leaders")
    await client.create_topic(kafka_cluster, topic, assignment=[[1, 2], [2, 3], [3, 1]])
    for partition in range(3):
        await client.produce(kafka_cluster, topic, [None] * 3, partition=partition)
    for partition in range(3):  # the high watermark passes a record once its follower has it
        assert await eventually(partial(client.log_range, kafka_cluster, topic, partition), (0, 3))
    addresses = [KafkaOffset(topic, partition, 1) for partition in range(3)]

    results = await msgdel.delete_at(url(kafka_cluster), addresses, adapter=adapter)

    assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 2)] * 3
    for partition in range(3):
        assert await client.log_range(kafka_cluster, topic, partition) == (2, 3)
        assert deletion_requests(kafka_cluster, Partition(topic, partition)) == 1
