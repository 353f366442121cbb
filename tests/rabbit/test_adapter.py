"""RabbitAdapter against the test bed's RabbitMQ node; every test reads the broker's state."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
import pytest
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, QueueType, RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.rabbit import RabbitAdapter
from tests.eventually import eventually

pytestmark = pytest.mark.rabbit


# -- helpers ----------------------------------------------------------------------------------
def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def queue_depth(url: str, queue: str) -> int:
    """Messages ready in ``queue``, read with a passive declare on a separate connection."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def drain_bodies(url: str, queue: str) -> list[str]:
    """Every body left in ``queue``, read (and removed) from a separate connection."""
    connection = await aio_pika.connect(url)
    bodies: list[str] = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        while (got := await declared.get(no_ack=True, fail=False)) is not None:
            bodies.append(got.body.decode())
    finally:
        await connection.close()
    return bodies


async def stream_bodies(url: str, stream: str) -> list[str]:
    """Every body in a stream queue, read from its first offset on a separate connection."""
    connection = await aio_pika.connect(url)
    bodies: list[str] = []
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(stream, passive=True)
        async with queue.iterator(arguments={"x-stream-offset": "first"}) as stream_iter:
            with contextlib.suppress(TimeoutError):
                while True:  # the first delivery may take a while; then they come at once
                    got = await asyncio.wait_for(stream_iter.__anext__(), 0.5 if bodies else 5)
                    bodies.append(got.body.decode())
                    await got.ack()
    finally:
        await connection.close()
    return bodies


@asynccontextmanager
async def consumed(
    url: str,
    queue: RabbitQueue,
    bodies: list[str],
    *,
    ack_policy: AckPolicy = AckPolicy.MANUAL,
    **subscriber: Any,
) -> AsyncIterator[tuple[RabbitBroker, list[Any]]]:
    """Publish ``bodies`` and hold every consumed FastStream message, unsettled under MANUAL.

    Leaving the block closes the broker: deliveries still unsettled go back to the queue.
    """
    broker = RabbitBroker(url, logger=None)
    got: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(queue, ack_policy=ack_policy, **subscriber)
    async def handle(body: str, message: RabbitMessage) -> None:
        got.append(message)
        if len(got) == len(bodies):
            done.set()

    async with broker:
        await broker.start()
        for body in bodies:
            await broker.publish(body, queue=queue.name, persist=True)
        await asyncio.wait_for(done.wait(), 10)
        # Handlers run concurrently and may start out of order; delivery order is queue order.
        got.sort(key=lambda m: m.raw_message.delivery_tag)
        yield broker, got


def bodies_of(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


# -- delete: MANUAL ack policy ------------------------------------------------------------------
async def test_deleted_messages_are_gone_and_the_others_are_requeued(rabbit_server: Any) -> None:
    name = new_name("manual")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(5)) as (_, messages):
        first = await msgdel.delete(messages[1])
        second = await msgdel.delete(messages[3])

    assert first.outcome is Outcome.DELETED
    assert first.semantics is Semantics.EXACT
    assert (first.broker, first.target, first.removed) == ("rabbit", name, 1)
    assert first.ids == (str(messages[1].raw_message.delivery_tag),)
    assert second.outcome is Outcome.DELETED
    assert await queue_depth(rabbit_server.url, name) == 3
    assert await drain_bodies(rabbit_server.url, name) == ["m0", "m2", "m4"]


async def test_deleting_twice_is_already_gone_and_sends_nothing(rabbit_server: Any) -> None:
    name = new_name("twice")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(2)) as (broker, messages):
        assert (await msgdel.delete(messages[0])).outcome is Outcome.DELETED
        again = await msgdel.delete(messages[0])
        await messages[1].ack()  # settled by the user through FastStream
        acked = await msgdel.delete(messages[1])
        # A second ack of a tag would have closed the channel; it is still open.
        await broker.publish("after", queue=name)
        assert await queue_depth(rabbit_server.url, name) in (0, 1)

    assert again.outcome is Outcome.ALREADY_GONE
    assert acked.outcome is Outcome.ALREADY_GONE
    assert again.removed == acked.removed == 0
    assert await drain_bodies(rabbit_server.url, name) == ["after"]


async def test_consumed_without_acknowledgement_is_already_gone(rabbit_server: Any) -> None:
    name = new_name("ackfirst")
    async with consumed(
        rabbit_server.url, RabbitQueue(name), bodies_of(2), ack_policy=AckPolicy.ACK_FIRST
    ) as (_, messages):
        results = [await msgdel.delete(messages[0]), *await msgdel.delete_many(messages)]

    assert [r.outcome for r in results] == [Outcome.ALREADY_GONE] * 3
    assert await queue_depth(rabbit_server.url, name) == 0


async def test_nacked_with_requeue_is_not_deletable(rabbit_server: Any) -> None:
    name = new_name("nacked")
    async with consumed(
        rabbit_server.url, RabbitQueue(name), ["only"], channel=Channel(prefetch_count=1)
    ) as (broker, messages):
        await messages[0].nack(requeue=True)
        with pytest.raises(NotDeletable, match="redelivered"):
            await msgdel.delete(messages[0])
        await broker.stop()  # stop consuming so the requeued message stays ready
        assert await eventually(lambda: queue_depth(rabbit_server.url, name), 1) == 1


async def test_closed_channel_fails_and_the_broker_redelivers(rabbit_server: Any) -> None:
    name = new_name("closed")
    async with consumed(rabbit_server.url, RabbitQueue(name), ["kept"]) as (_, messages):
        pass  # leaving the block closes the connection and its channel

    with pytest.raises(DeletionFailed, match="redeliver") as failed:
        await msgdel.delete(messages[0])
    assert failed.value.retryable is False
    assert "guest" not in str(failed.value)
    assert await drain_bodies(rabbit_server.url, name) == ["kept"]


# -- delete: FastStream's default ack policy ---------------------------------------------------
async def test_default_ack_policy_channel_survives_and_later_messages_are_consumed(
    rabbit_server: Any,
) -> None:
    name = new_name("default")
    broker = RabbitBroker(rabbit_server.url, logger=None)
    results: list[msgdel.DeleteResult] = []
    channels: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(RabbitQueue(name))  # acks after the handler returns
    async def handle(body: str, message: RabbitMessage) -> None:
        channels.append(message.raw_message.channel)
        results.append(await msgdel.delete(message))
        if len(results) == 6:
            done.set()

    async with broker:
        await broker.start()
        for body in bodies_of(3):
            await broker.publish(body, queue=name)
        await asyncio.sleep(0.3)  # FastStream's own acks of the first three have run
        for body in bodies_of(3):
            await broker.publish(body, queue=name)
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.sleep(0.1)  # FastStream's ack of the last one has run too
        # One channel delivered all six, and FastStream's acks did not close it.
        assert all(channel is channels[0] for channel in channels)
        assert not channels[0].is_closed

    assert [r.outcome for r in results] == [Outcome.DELETED] * 6
    assert await queue_depth(rabbit_server.url, name) == 0


# -- delete_many ----------------------------------------------------------------------------------
async def test_delete_many_of_a_contiguous_run_leaves_fast_stream_nothing_to_send(
    rabbit_server: Any,
) -> None:
    name = new_name("many")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(50)) as (broker, got):
        msgs = list(got)
        results = await msgdel.delete_many(msgs)
        for message in msgs:  # what FastStream's ack after the handler would do
            await message.ack()
        await broker.publish("after", queue=name)

    assert [r.outcome for r in results] == [Outcome.DELETED] * 50
    assert [r.ids for r in results] == [(str(m.raw_message.delivery_tag),) for m in msgs]
    assert all(m.raw_message.locked for m in msgs)
    assert await drain_bodies(rabbit_server.url, name) == ["after"]


async def test_delete_many_across_a_gap_keeps_the_undeleted_neighbours(
    rabbit_server: Any,
) -> None:
    name = new_name("gap")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(8)) as (_, msgs):
        chosen = [msgs[i] for i in (5, 0, 1, 3, 7)]  # input order is kept in the results
        results = await msgdel.delete_many(chosen)
        later = await msgdel.delete_many([msgs[2], msgs[0]])

    assert [r.ids for r in results] == [(str(m.raw_message.delivery_tag),) for m in chosen]
    assert [r.outcome for r in results] == [Outcome.DELETED] * 5
    assert [r.outcome for r in later] == [Outcome.DELETED, Outcome.ALREADY_GONE]
    assert await drain_bodies(rabbit_server.url, name) == ["m4", "m6"]


async def test_delete_many_never_settles_an_earlier_delivery_it_was_not_given(
    rabbit_server: Any,
) -> None:
    name = new_name("earlier")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(6)) as (_, msgs):
        await msgdel.delete_many(msgs[1:5])  # msgs[0] stays unsettled below the batch
        await msgdel.delete_many([msgs[5]])

    assert await drain_bodies(rabbit_server.url, name) == ["m0"]


async def test_delete_many_checks_every_message_before_settling_any(rabbit_server: Any) -> None:
    name = new_name("check")
    async with consumed(rabbit_server.url, RabbitQueue(name), bodies_of(3)) as (_, msgs):
        await msgs[1].nack(requeue=True)
        with pytest.raises(NotDeletable):
            await msgdel.delete_many(msgs)
        assert msgs[0].committed is None
        assert msgs[2].committed is None


# -- dead-lettering and queue types -----------------------------------------------------------
async def test_dead_letter_rejects_into_the_dead_letter_queue(rabbit_server: Any) -> None:
    name, dlq = new_name("dlx-src"), new_name("dlx-dlq")
    adapter = RabbitAdapter(dead_letter=True)
    queue = RabbitQueue(
        name,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq},
    )
    async with consumed(rabbit_server.url, queue, bodies_of(5)) as (broker, msgs):
        await broker.declare_queue(RabbitQueue(dlq))
        one = await adapter.delete(msgs[2])
        many = await adapter.delete_many([msgs[0], msgs[1], msgs[4]])
        # the broker dead-letters rejected messages after answering
        assert await eventually(lambda: queue_depth(rabbit_server.url, dlq), 4) == 4

    assert one.outcome is Outcome.DELETED
    assert [r.outcome for r in many] == [Outcome.DELETED] * 3
    assert sorted(await drain_bodies(rabbit_server.url, dlq)) == ["m0", "m1", "m2", "m4"]
    assert await drain_bodies(rabbit_server.url, name) == ["m3"]


async def test_quorum_queue_deletes_exactly_the_message(rabbit_server: Any) -> None:
    name = new_name("quorum")
    queue = RabbitQueue(name, queue_type=QueueType.QUORUM)
    async with consumed(rabbit_server.url, queue, bodies_of(3)) as (_, msgs):
        result = await msgdel.delete(msgs[1])

    assert (result.outcome, result.target) == (Outcome.DELETED, name)
    assert await drain_bodies(rabbit_server.url, name) == ["m0", "m2"]


async def test_stream_queue_refuses_deletion(rabbit_server: Any) -> None:
    name = new_name("stream")
    queue = RabbitQueue(name, queue_type=QueueType.STREAM)
    async with consumed(
        rabbit_server.url,
        queue,
        bodies_of(2),
        channel=Channel(prefetch_count=10),
        consume_args={"x-stream-offset": "first"},
    ) as (_, msgs):
        with pytest.raises(UnsupportedDeletion, match="retention"):
            await msgdel.delete(msgs[0])
        with pytest.raises(UnsupportedDeletion):
            await msgdel.delete_many(msgs)
        assert msgs[0].committed is None

    assert await stream_bodies(rabbit_server.url, name) == ["m0", "m1"]


# -- in-memory test broker -------------------------------------------------------------------------
async def test_in_memory_test_broker_messages_are_skipped() -> None:
    broker = RabbitBroker()
    results: list[msgdel.DeleteResult] = []

    @broker.subscriber("in-memory")
    async def handle(body: str, message: RabbitMessage) -> None:
        results.append(await msgdel.delete(message))
        results.extend(await msgdel.delete_many([message]))

    async with TestRabbitBroker(broker) as test_broker:
        await test_broker.publish("hello", queue="in-memory")

    assert [r.outcome for r in results] == [Outcome.SKIPPED, Outcome.SKIPPED]
    assert results[0].broker == "rabbit"
    assert results[0].removed == 0
