"""JetStream: by default a message another consumer of the stream still needs is kept.

A limits stream read by several durable consumers ("billing" is the harness's own, the
others are made here with nats-py): a delete is ``DEFERRED`` while another consumer whose
filter matches has not acknowledged the message, and the consumer that finishes last
deletes it. Checked in the stream's own state.
"""

from __future__ import annotations

from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig

import msgdel
from msgdel import Outcome
from msgdel.adapters.nats import JetStreamAdapter, subject_matches
from tests.nats.harness import JetStreamHarness


async def acknowledge(harness: JetStreamHarness, stream: str, consumer: str, count: int) -> None:
    """Let ``consumer`` read and acknowledge the first ``count`` messages of ``stream``."""
    sub = await harness.js.pull_subscribe_bind(consumer, stream)
    for message in await sub.fetch(count, timeout=5):
        await message.ack_sync()
    await sub.unsubscribe()


async def add_consumer(harness: JetStreamHarness, stream: str, name: str, **config: Any) -> None:
    await harness.js.add_consumer(
        stream, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, **config)
    )


async def test_a_message_stays_until_the_last_consumer_is_done(nats_server: Any) -> None:
    async with JetStreamHarness(nats_server, pull=True) as harness:
        async with harness.consumed(2) as got:
            await add_consumer(harness, got.target, "shipping")
            await add_consumer(harness, got.target, "audit")
            first = await msgdel.delete(got.messages[0], registry=harness.registry)
            assert (first.outcome, first.removed) == (Outcome.DEFERRED, 0)

            await acknowledge(harness, got.target, "shipping", 1)
            still = await msgdel.delete(got.messages[0], registry=harness.registry)
            assert still.outcome is Outcome.DEFERRED  # audit has not even read it

            await acknowledge(harness, got.target, "audit", 1)
            last = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert (last.outcome, last.removed) == (Outcome.DELETED, 1)
        assert await harness.stored(got.target) == list(got.ids[1])  # the neighbour stays


async def test_a_consumer_whose_filter_does_not_match_does_not_hold_the_message(
    nats_server: Any,
) -> None:
    async with JetStreamHarness(nats_server, pull=True) as harness:
        async with harness.consumed(1) as got:
            other = f"{got.target}.other"
            info = await harness.js.stream_info(got.target)
            info.config.subjects = [*(info.config.subjects or []), other]
            await harness.js.update_stream(info.config)
            await add_consumer(harness, got.target, "elsewhere", filter_subject=other)
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert result.outcome is Outcome.DELETED
        assert await harness.stored(got.target) == []


async def test_delete_many_defers_only_what_a_lagging_consumer_has_not_acknowledged(
    nats_server: Any,
) -> None:
    async with JetStreamHarness(nats_server, pull=True) as harness:
        async with harness.consumed(3) as got:
            await add_consumer(harness, got.target, "shipping")
            await acknowledge(harness, got.target, "shipping", 1)  # only the first
            results = await msgdel.delete_many(got.messages, registry=harness.registry)
        assert [r.outcome for r in results] == [
            Outcome.DELETED,
            Outcome.DEFERRED,
            Outcome.DEFERRED,
        ]
        assert await harness.stored(got.target) == [i for (i,) in got.ids[1:]]


async def test_ignore_other_consumers_deletes_at_once(nats_server: Any) -> None:
    adapter = JetStreamAdapter(ignore_other_consumers=True)
    async with JetStreamHarness(nats_server, pull=True, adapter=adapter) as harness:
        async with harness.consumed(1) as got:
            await add_consumer(harness, got.target, "shipping")
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert result.outcome is Outcome.DELETED
        assert await harness.stored(got.target) == []


def test_filter_subjects_match_as_nats_does() -> None:
    assert subject_matches("orders.>", "orders.eu.new")
    assert not subject_matches("orders.>", "orders")
    assert subject_matches("orders.*.new", "orders.eu.new")
    assert not subject_matches("orders.*", "orders.eu.new")
    assert subject_matches("orders.eu", "orders.eu")
    assert not subject_matches("orders.eu", "orders.us")
