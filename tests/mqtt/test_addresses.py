"""Deletion by address on MQTT: ``msgdel.delete_at`` with a retained topic, on an ``mqtt://``
URL or a connected zmqtt client, cleared by the same adapter (and the same clearing code) as a
consumed retained message. An address does not say whether its topic retains anything, so the
adapter checks at the broker first. Every test reads the test bed's Mosquitto afterwards with
raw zmqtt clients of its own: the retained messages a brand-new subscriber gets, and the
clearing (empty) publishes the broker forwarded."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmqtt

import msgdel
from msgdel import DeletionFailed, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.mqtt import DEFAULT_RETAINED_WAIT, MQTTAdapter
from msgdel.address import RetainedTopic
from tests.mqtt.harness import fresh_prefix, topics_under
from tests.mqtt.helpers import Watch, retain, retained
from tests.testbed.mosquitto import MosquittoServer
from tests.testbed.process import free_port

PASSWORD = "s3cr3t-mqtt"
SYS_VERSION = "$SYS/broker/version"
"""A topic Mosquitto retains a message on itself and refuses clients' publishes to."""
QUICK = MQTTAdapter(retained_wait=0.2)
"""An adapter that concludes sooner that a topic retains nothing (the test bed is local)."""


async def test_retained_topics_are_cleared_through_a_url_and_their_neighbours_keep_theirs(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    first, middle, last = topics_under(prefix, 3)
    await retain(port, {first: b"a", middle: b"b", last: b"c"})
    async with Watch.on(port, f"{prefix}/#") as watch:
        results = await msgdel.delete_at(
            mosquitto_server.url, [RetainedTopic(first), RetainedTopic(last)]
        )
        assert (await watch.caught_up()).clears() == [first, last]
    assert results == [
        msgdel.DeleteResult("mqtt", first, (first,), Semantics.EXACT, Outcome.DELETED, 1),
        msgdel.DeleteResult("mqtt", last, (last,), Semantics.EXACT, Outcome.DELETED, 1),
    ]
    assert await retained(port, f"{prefix}/#") == {middle: b"b"}


async def test_a_retained_topic_is_cleared_on_a_connected_client_which_stays_connected(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    topic, neighbour = topics_under(prefix, 2)
    await retain(port, {topic: b"a", neighbour: b"b"})
    async with zmqtt.create_client("127.0.0.1", port) as client:
        (result,) = await msgdel.delete_at(client, [RetainedTopic.parse(topic)])
        assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
        await client.ping()  # still connected: msgdel closes only what it opened
    assert await retained(port, f"{prefix}/#") == {neighbour: b"b"}


async def test_a_topic_that_retains_nothing_is_nothing_stored_and_nothing_is_published(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    empty, held = topics_under(prefix, 2)
    await retain(port, {held: b"b"})
    async with Watch.on(port, f"{prefix}/#") as watch:
        began = time.monotonic()
        nothing, cleared = await msgdel.delete_at(
            mosquitto_server.url, [RetainedTopic(empty), RetainedTopic(held)]
        )
        waited = time.monotonic() - began
        assert (await watch.caught_up()).clears() == [held]
    assert nothing == msgdel.DeleteResult(
        "mqtt", empty, (empty,), Semantics.EXACT, Outcome.NOTHING_STORED, 0
    )
    assert cleared.outcome is Outcome.DELETED
    assert waited >= DEFAULT_RETAINED_WAIT  # the check waited its bound for the empty topic
    assert await retained(port, f"{prefix}/#") == {}


async def test_a_live_message_during_the_check_does_not_count_as_retained(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    (topic,) = topics_under(prefix, 1)
    adapter = MQTTAdapter(retained_wait=0.5)
    async with zmqtt.create_client("127.0.0.1", port) as client:
        task = asyncio.ensure_future(adapter.delete_at(client, [RetainedTopic(topic)]))
        while not task.done():  # live publishes all through the check, not retained
            await client.publish(topic, b"live", qos=zmqtt.QoS.AT_LEAST_ONCE)
            await asyncio.sleep(0.02)
        (result,) = task.result()
    assert isinstance(result, msgdel.DeleteResult)
    assert result.outcome is Outcome.NOTHING_STORED


async def test_a_client_subscribed_to_a_matching_filter_is_refused_and_nothing_is_sent(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    (topic,) = topics_under(prefix, 1)
    await retain(port, {topic: b"a"})
    async with (
        zmqtt.create_client("127.0.0.1", port) as client,
        client.subscribe(f"{prefix}/#"),
    ):
        with pytest.raises(UnsupportedDeletion, match=f"{prefix}/#"):
            await msgdel.delete_at(client, [RetainedTopic(topic)])
    assert await retained(port, f"{prefix}/#") == {topic: b"a"}


async def test_a_topic_the_broker_refuses_to_clear_fails_alone(mosquitto_server: Any) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    (topic,) = topics_under(prefix, 1)
    await retain(port, {topic: b"a"})
    refused, cleared = await msgdel.delete_at(
        mosquitto_server.url,
        [RetainedTopic(SYS_VERSION), RetainedTopic(topic)],
        return_exceptions=True,
    )
    assert isinstance(refused, DeletionFailed)
    assert refused.retryable is False
    assert "Not authorized" in str(refused)
    assert isinstance(cleared, msgdel.DeleteResult)
    assert cleared.outcome is Outcome.DELETED
    assert SYS_VERSION in await retained(port, SYS_VERSION)
    assert await retained(port, f"{prefix}/#") == {}


async def test_a_dry_run_sends_nothing_and_leaves_the_retained_message(
    mosquitto_server: Any,
) -> None:
    port, prefix = mosquitto_server.port, fresh_prefix()
    (topic,) = topics_under(prefix, 1)
    await retain(port, {topic: b"a"})
    async with Watch.on(port, f"{prefix}/#") as watch:
        (result,) = await msgdel.delete_at(
            mosquitto_server.url, [RetainedTopic(topic)], dry_run=True
        )
        assert (await watch.caught_up()).clears() == []
    assert (result.target, result.outcome) == (topic, Outcome.SKIPPED)
    assert await retained(port, f"{prefix}/#") == {topic: b"a"}


async def test_an_unreachable_broker_fails_retryably_without_the_password_in_the_error() -> None:
    url = f"mqtt://deleter:{PASSWORD}@127.0.0.1:{free_port()}"
    with pytest.raises(DeletionFailed) as caught:
        await msgdel.delete_at(url, [RetainedTopic("devices/1/config")], adapter=QUICK)
    assert caught.value.retryable
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


class GuardedMosquitto(MosquittoServer):
    """A Mosquitto of one test that takes only the user ``deleter`` with :data:`PASSWORD`."""

    def prepare(self) -> None:
        super().prepare()
        passwords = self.workdir / "passwords"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwords), "deleter", PASSWORD],
            check=True,
            capture_output=True,
        )
        config = self.config_path.read_text().replace("allow_anonymous true", "")
        self.config_path.write_text(f"{config}allow_anonymous false\npassword_file {passwords}\n")

    def credentials(self, password: str) -> str:
        return self.url.replace("mqtt://", f"mqtt://deleter:{password}@")


@pytest.fixture
def guarded_mosquitto(tmp_path: Path) -> Iterator[GuardedMosquitto]:
    server = GuardedMosquitto(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_the_urls_credentials_are_used_and_refused_ones_fail_for_good(
    guarded_mosquitto: GuardedMosquitto,
) -> None:
    topic = f"{fresh_prefix()}/config"
    async with zmqtt.create_client(
        "127.0.0.1", guarded_mosquitto.port, username="deleter", password=PASSWORD
    ) as client:
        await client.publish(topic, b"on", qos=zmqtt.QoS.AT_LEAST_ONCE, retain=True)
    wrong = "not-the-pa55word"
    with pytest.raises(DeletionFailed) as caught:
        await msgdel.delete_at(guarded_mosquitto.credentials(wrong), [RetainedTopic(topic)])
    assert caught.value.retryable is False  # the same credentials cannot succeed later
    assert wrong not in str(caught.value)
    assert wrong not in repr(caught.value)
    (result,) = await msgdel.delete_at(
        guarded_mosquitto.credentials(PASSWORD), [RetainedTopic(topic)]
    )
    assert (result.outcome, result.removed) == (Outcome.DELETED, 1)


async def test_a_disconnected_client_fails_retryably(mosquitto_server: Any) -> None:
    client = zmqtt.create_client("127.0.0.1", mosquitto_server.port)  # never connected
    (outcome,) = await QUICK.delete_at(client, [RetainedTopic("devices/1/config")])
    assert isinstance(outcome, DeletionFailed)
    assert outcome.retryable


async def test_a_client_of_another_library_is_refused_naming_the_client_expected() -> None:
    with pytest.raises(UnsupportedDeletion, match=r"zmqtt\.MQTTClient"):
        await msgdel.delete_at(object(), [RetainedTopic("devices/1/config")])
