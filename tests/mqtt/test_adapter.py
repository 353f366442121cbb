"""MQTT adapter specs beyond the conformance kit, on the test bed's Mosquitto: what one
retained slot per topic means for batches, repeats, live messages and failures."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter
from tests.mqtt.harness import LiveHarness, RetainedHarness, fresh_prefix, topics_under
from tests.mqtt.helpers import retain, retained

Outcome = msgdel.Outcome
SYS_VERSION = "$SYS/broker/version"
"""A topic Mosquitto retains a message on itself and refuses clients' publishes to."""


async def test_delete_many_clears_each_topic_once_however_many_of_its_messages_are_given(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    async with harness.consumed(3) as got:
        first, second, _ = got.messages
        results = await msgdel.delete_many([first, second, first], registry=harness.registry)
        sent = await harness.requests(got.target)

    assert [(r.target, r.outcome, r.removed) for r in results] == [
        (got.ids[0][0], Outcome.DELETED, 1),
        (got.ids[1][0], Outcome.DELETED, 1),
        (got.ids[0][0], Outcome.ALREADY_GONE, 0),
    ]
    assert sent == 2
    assert await harness.stored(got.target) == list(got.ids[2])


async def test_two_deletes_of_one_message_at_once_clear_it_once_and_report_one_deletion(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    async with harness.consumed(2) as got:
        both = await asyncio.gather(
            *(msgdel.delete(got.messages[0], registry=harness.registry) for _ in range(2))
        )
        sent = await harness.requests(got.target)

    assert sorted(r.outcome.name for r in both) == ["ALREADY_GONE", "DELETED"]
    assert sent == 1
    assert await harness.stored(got.target) == list(got.ids[1])


async def test_a_live_message_leaves_the_retained_message_of_its_topic(
    live_messages: LiveHarness,
) -> None:
    harness, port = live_messages, live_messages.server.port
    prefix = fresh_prefix()
    topics = topics_under(prefix, 2)
    await retain(port, {t: b"keep" for t in topics})
    await harness.watch(prefix)
    async with harness.consume(topics, [f"{prefix}/#"]) as (live, _):
        results = await msgdel.delete_many(live, registry=harness.registry)
        sent = await harness.requests(prefix)

    assert [(r.target, r.semantics, r.outcome) for r in results] == [
        (t, msgdel.Semantics.NOT_STORED, Outcome.NOTHING_STORED) for t in topics
    ]
    assert sent == 0
    assert await retained(port, f"{prefix}/#") == {t: b"keep" for t in topics}


async def test_a_topic_the_broker_refuses_to_clear_fails_alone(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    prefix = fresh_prefix()
    topics = topics_under(prefix, 2)
    filters = [f"{prefix}/#", SYS_VERSION]
    async with harness.consume(topics, filters, existing=[SYS_VERSION]) as (got, _):
        first, last, refused = got
        outcomes = await msgdel.delete_many(
            [first, refused, last], registry=harness.registry, return_exceptions=True
        )

    cleared, failed, also_cleared = outcomes
    assert isinstance(failed, msgdel.DeletionFailed)
    assert failed.retryable is False
    assert "Not authorized" in str(failed)
    assert [(r.target, r.outcome) for r in (cleared, also_cleared)] == [
        (topics[0], Outcome.DELETED),
        (topics[1], Outcome.DELETED),
    ]
    assert await harness.stored(prefix) == []
    assert SYS_VERSION in await retained(harness.server.port, SYS_VERSION)


async def test_a_closed_broker_fails_only_the_messages_it_would_have_to_clear(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    async with harness.consumed(2) as got:
        await msgdel.delete(got.messages[0], registry=harness.registry)
    # the broker is closed now: the first message needs it no more, the second does
    gone, failed = await msgdel.delete_many(
        got.messages, registry=harness.registry, return_exceptions=True
    )

    assert isinstance(gone, msgdel.DeleteResult)
    assert gone.outcome is Outcome.ALREADY_GONE
    assert isinstance(failed, msgdel.DeletionFailed)
    assert failed.retryable is True
    assert "not connected" in str(failed)
    assert await harness.stored(got.target) == list(got.ids[1])


async def test_outside_a_handler_an_unbound_adapter_says_how_to_register(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    async with harness.consumed(1) as got:
        with pytest.raises(msgdel.UnsupportedDeletion, match=r"msgdel\.register"):
            await MQTTAdapter().delete(got.messages[0])

    assert await harness.stored(got.target) == list(got.ids[0])
