"""RabbitAdapter's own specs beyond the conformance kit: how it settles deliveries, what it
leaves to FastStream, and what it refuses. Every spec reads the broker's state.

Every block of ``harness.consumed``/``consumed`` also fails if the broker closed the
consuming channel, which it does when a delivery tag is settled twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, QueueType, RabbitQueue

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, UnsupportedDeletion
from msgdel.adapters.rabbit import RabbitAdapter
from tests.eventually import eventually
from tests.rabbit.harness import (
    RabbitHarness,
    bodies_of,
    consumed,
    drain_bodies,
    inspecting,
    new_name,
    queue_depth,
)


@pytest.fixture(params=[QueueType.CLASSIC, QueueType.QUORUM], ids=lambda t: t.value)
def any_queue(rabbit_server: Any, request: pytest.FixtureRequest) -> RabbitHarness:
    return RabbitHarness(rabbit_server.url, request.param)


async def stream_bodies(url: str, stream: str) -> list[str]:
    """Every body in a stream queue, read from its first offset on a separate connection."""
    bodies: list[str] = []
    async with inspecting(url) as channel:
        await channel.set_qos(prefetch_count=100)
        queue = await channel.declare_queue(stream, passive=True)
        async with queue.iterator(arguments={"x-stream-offset": "first"}) as stream_iter:
            with contextlib.suppress(asyncio.TimeoutError):  # builtin only from 3.11
                while True:  # the first delivery may take a while; then they come at once
                    got = await asyncio.wait_for(stream_iter.__anext__(), 0.5 if bodies else 5)
                    bodies.append(got.body.decode())
                    await got.ack()
    return bodies


# -- what a result says -----------------------------------------------------------------------
async def test_a_result_names_the_queue_the_subscriber_consumed(any_queue: RabbitHarness) -> None:
    async with any_queue.consumed(2) as got:
        results = [await msgdel.delete(got.messages[0]), *await msgdel.delete_many(got.messages)]

    assert [r.target for r in results] == [got.target] * 3
    assert [r.outcome for r in results] == [Outcome.DELETED, Outcome.ALREADY_GONE, Outcome.DELETED]


# -- what is settled already ------------------------------------------------------------------
async def test_a_delivery_the_handler_settled_is_already_gone_and_is_not_settled_again(
    classic: RabbitHarness,
) -> None:
    async with classic.consumed(4) as got:
        first, second = got.messages[:2]
        await first.ack()
        await second.reject(requeue=False)
        results = await msgdel.delete_many(got.messages)
        again = await msgdel.delete(first)
        for message in got.messages:  # what FastStream's ack after the handler would do
            await message.ack()

    assert [r.outcome for r in results] == [Outcome.ALREADY_GONE] * 2 + [Outcome.DELETED] * 2
    assert (again.outcome, again.removed) == (Outcome.ALREADY_GONE, 0)
    assert await classic.stored(got.target) == []


async def test_consumed_without_acknowledgement_is_already_gone(rabbit_server: Any) -> None:
    name = new_name("ackfirst")
    async with consumed(
        rabbit_server.url, RabbitQueue(name), bodies_of(2), ack_policy=AckPolicy.ACK_FIRST
    ) as messages:
        results = [await msgdel.delete(messages[0]), *await msgdel.delete_many(messages)]

    assert [r.outcome for r in results] == [Outcome.ALREADY_GONE] * 3
    assert await queue_depth(rabbit_server.url, name) == 0


async def test_a_nacked_delivery_fails_alone_and_the_rest_of_its_batch_is_deleted(
    classic: RabbitHarness,
) -> None:
    async with classic.consumed(4) as got:
        await got.messages[1].nack(requeue=True)
        with pytest.raises(NotDeletable, match="redelivered"):
            await msgdel.delete(got.messages[1])
        outcomes = await msgdel.delete_many(got.messages, return_exceptions=True)

    assert isinstance(outcomes[1], NotDeletable)
    assert [o.outcome for o in outcomes if not isinstance(o, Exception)] == [Outcome.DELETED] * 3
    # The broker redelivered the nacked message; that delivery was never settled.
    assert await classic.stored(got.target) == [*got.ids[1]]


# -- closed channels --------------------------------------------------------------------------
async def test_a_closed_channel_fails_and_the_broker_redelivers(classic: RabbitHarness) -> None:
    async with classic.consumed(1) as got:
        pass  # leaving the block closes the connection and its channel

    with pytest.raises(DeletionFailed, match="redeliver") as failed:
        await msgdel.delete(got.messages[0])
    assert failed.value.retryable is False
    assert "guest" not in str(failed.value)
    assert await classic.stored(got.target) == [*got.ids[0]]


async def test_a_closed_channel_fails_only_its_own_messages(classic: RabbitHarness) -> None:
    async with classic.consumed(2) as closed:
        pass
    async with classic.consumed(2) as live:
        mixed = [closed.messages[0], live.messages[0], closed.messages[1], live.messages[1]]
        outcomes = await msgdel.delete_many(mixed, return_exceptions=True)

    assert [type(o) for o in outcomes[::2]] == [DeletionFailed, DeletionFailed]
    assert [o.outcome for o in outcomes[1::2]] == [Outcome.DELETED, Outcome.DELETED]
    assert await classic.stored(closed.target) == [i for (i,) in closed.ids]
    assert await classic.stored(live.target) == []


# -- runs of delivery tags --------------------------------------------------------------------
async def test_delete_many_of_a_contiguous_run_leaves_fast_stream_nothing_to_send(
    classic: RabbitHarness,
) -> None:
    async with classic.consumed(50) as got:
        results = await msgdel.delete_many(got.messages)
        for message in got.messages:  # what FastStream's ack after the handler would do
            await message.ack()

    assert [r.outcome for r in results] == [Outcome.DELETED] * 50
    assert [r.ids for r in results] == got.ids
    assert all(m.raw_message.locked for m in got.messages)
    assert await classic.stored(got.target) == []


async def test_delete_many_across_a_gap_keeps_the_undeleted_neighbours(
    classic: RabbitHarness,
) -> None:
    async with classic.consumed(8) as got:
        chosen = [got.messages[i] for i in (5, 0, 1, 3, 7)]  # input order is kept in the results
        results = await msgdel.delete_many(chosen)
        later = await msgdel.delete_many([got.messages[2], got.messages[0]])

    assert [r.ids for r in results] == [got.ids[i] for i in (5, 0, 1, 3, 7)]
    assert [r.outcome for r in results] == [Outcome.DELETED] * 5
    assert [r.outcome for r in later] == [Outcome.DELETED, Outcome.ALREADY_GONE]
    assert await classic.stored(got.target) == [*got.ids[4], *got.ids[6]]


async def test_delete_many_never_settles_an_earlier_delivery_it_was_not_given(
    classic: RabbitHarness,
) -> None:
    async with classic.consumed(6) as got:
        await msgdel.delete_many(got.messages[1:5])  # the first stays unsettled below the batch
        await msgdel.delete_many([got.messages[5]])

    assert await classic.stored(got.target) == [*got.ids[0]]


# -- dead-lettering ---------------------------------------------------------------------------
async def test_dead_letter_rejects_into_the_dead_letter_queue(rabbit_server: Any) -> None:
    name, dlq = new_name("dlx-src"), new_name("dlx-dlq")
    adapter = RabbitAdapter(dead_letter=True)
    queue = RabbitQueue(
        name,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq},
    )
    async with inspecting(rabbit_server.url) as channel:
        await channel.declare_queue(dlq, durable=True)
    async with consumed(rabbit_server.url, queue, bodies_of(5)) as msgs:
        one = await adapter.delete(msgs[2])
        many = await adapter.delete_many([msgs[0], msgs[1], msgs[4]])
        # the broker dead-letters rejected messages after answering
        assert await eventually(lambda: queue_depth(rabbit_server.url, dlq), 4) == 4

    assert one.outcome is Outcome.DELETED
    assert [r.outcome for r in many] == [Outcome.DELETED] * 3
    assert sorted(await drain_bodies(rabbit_server.url, dlq)) == ["m0", "m1", "m2", "m4"]
    assert await drain_bodies(rabbit_server.url, name) == ["m3"]


# -- stream queues ----------------------------------------------------------------------------
@pytest.mark.parametrize("declared", [True, False], ids=["declared", "existing"])
async def test_a_stream_queue_refuses_every_message_and_keeps_them(
    rabbit_server: Any, declared: bool
) -> None:
    """A subscriber that declares the stream says so; one that connects to an existing queue
    (``declare=False``) declares nothing, and the deliveries' ``x-stream-offset`` decides."""
    name = new_name("stream")
    queue = RabbitQueue(name, queue_type=QueueType.STREAM)
    if not declared:
        async with inspecting(rabbit_server.url) as channel:
            await channel.declare_queue(name, durable=True, arguments=queue.arguments)
        queue = RabbitQueue(name, declare=False)
    async with consumed(
        rabbit_server.url,
        queue,
        bodies_of(2),
        channel=Channel(prefetch_count=10),
        consume_args={"x-stream-offset": "first"},
    ) as msgs:
        with pytest.raises(UnsupportedDeletion, match="retention"):
            await msgdel.delete(msgs[0])
        outcomes = await msgdel.delete_many(msgs, return_exceptions=True)
        assert [type(o) for o in outcomes] == [UnsupportedDeletion] * 2
        assert [m.committed for m in msgs] == [None, None]

    assert await stream_bodies(rabbit_server.url, name) == ["m0", "m1"]


async def test_an_x_stream_offset_header_does_not_make_a_message_undeletable(
    any_queue: RabbitHarness,
) -> None:
    queue = any_queue.queue()
    async with consumed(any_queue.url, queue, bodies_of(2), headers={"x-stream-offset": 7}) as msgs:
        result = await msgdel.delete(msgs[0])

    assert result.outcome is Outcome.DELETED
    assert await drain_bodies(any_queue.url, queue.name) == ["m1"]
