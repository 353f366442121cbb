"""DeleteMiddleware with the built-in MQTT adapter on the test bed's Mosquitto (the kit runs
the middleware with an adapter bound to the broker; here it finds the handler's broker)."""

from __future__ import annotations

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

import msgdel
from msgdel.faststream import DeleteMiddleware
from msgdel.testing import record_deletions
from tests.eventually import eventually
from tests.mqtt.harness import RetainedHarness, fresh_prefix, topics_under
from tests.mqtt.helpers import retain


async def test_each_handled_topic_is_cleared_once_and_the_clearing_echoes_are_not(
    retained_messages: RetainedHarness,
) -> None:
    harness = retained_messages
    prefix = fresh_prefix()
    topics = topics_under(prefix, 3)
    unsubscribed = f"{prefix}/unsubscribed"
    await retain(harness.server.port, {unsubscribed: b"keep"})
    registry = msgdel.Registry()  # the built-in adapter: bound to no broker
    harness.broker.add_middleware(DeleteMiddleware(registry=registry))
    await harness.watch(prefix)
    with record_deletions(registry) as deletions:
        async with harness.consume(topics, filters=topics):  # one subscriber per topic
            # The broker forwards each clearing publish to the topic's live subscribers,
            # the app's own: 3 retained messages handled, then 3 empty echoes.
            await eventually(lambda: len(deletions), 6)
            sent = await harness.requests(prefix)

    assert sorted((r.target, r.outcome, r.removed) for r in deletions.results) == sorted(
        [(t, msgdel.Outcome.DELETED, 1) for t in topics]
        + [(t, msgdel.Outcome.NOTHING_STORED, 0) for t in topics]
    )
    assert sent == 3
    assert await harness.stored(prefix) == [unsubscribed]
