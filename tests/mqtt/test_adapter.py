"""MQTT adapter against the test bed's Mosquitto: a new subscriber tells what is retained."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

from faststream import Context
from faststream.mqtt import MQTTBroker, TestMQTTBroker

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter
from tests.mqtt.helpers import QOS1, retain, retained

pytestmark = pytest.mark.mqtt

Message = Annotated[Any, Context("message")]


def _topic(prefix: str) -> str:
    return f"msgdel/{prefix}/{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def consumed(
    url: str,
    topic: str,
    expect: int,
    on_message: Callable[[Any], Awaitable[None]] | None = None,
    publish: Callable[[MQTTBroker], Awaitable[None]] | None = None,
) -> AsyncIterator[tuple[MQTTBroker, list[Any]]]:
    """Subscribe to ``topic`` with FastStream and yield once ``expect`` messages arrived."""
    broker = MQTTBroker(url)
    got: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(topic, qos=QOS1)
    async def handle(message: Message) -> None:
        got.append(message)
        if on_message is not None:
            await on_message(message)
        if len(got) >= expect:
            done.set()

    async with broker:
        await broker.start()
        if publish is not None:
            await publish(broker)
        await asyncio.wait_for(done.wait(), 10)
        yield broker, got


async def test_a_consumed_retained_message_is_cleared_for_new_subscribers(
    mosquitto_server: Any,
) -> None:
    topic, neighbour = _topic("retained"), _topic("neighbour")
    await retain(mosquitto_server.port, topic, b"config-v1")
    await retain(mosquitto_server.port, neighbour, b"other")
    results: list[msgdel.DeleteResult] = []

    async def delete(message: Any) -> None:
        results.append(await msgdel.delete(message))  # the default adapter, inside the handler

    async with consumed(mosquitto_server.url, topic, 1, on_message=delete):
        pass

    assert results == [
        msgdel.DeleteResult("mqtt", topic, [], msgdel.Semantics.EXACT, msgdel.Outcome.DELETED, 1)
    ]
    assert await retained(mosquitto_server.port, topic) is None
    assert await retained(mosquitto_server.port, neighbour) == b"other"


async def test_a_live_message_was_never_stored_and_the_retained_one_stays(
    mosquitto_server: Any,
) -> None:
    topic = _topic("live")
    await retain(mosquitto_server.port, topic, b"keep")

    async def publish(broker: MQTTBroker) -> None:
        await broker.publish("live", topic, qos=QOS1)

    async with consumed(mosquitto_server.url, topic, 2, publish=publish) as (broker, got):
        live = next(m for m in got if m.body == b"live")
        result = await MQTTAdapter(broker).delete(live)

    assert result.semantics is msgdel.Semantics.NOT_STORED
    assert result.outcome is msgdel.Outcome.NOTHING_STORED
    assert await retained(mosquitto_server.port, topic) == b"keep"


async def test_delete_many_clears_each_topic_once_in_input_order(mosquitto_server: Any) -> None:
    base = _topic("many")
    topics = [f"{base}/a", f"{base}/b", f"{base}/c"]
    for t in topics:
        await retain(mosquitto_server.port, t, t.encode())

    async with consumed(mosquitto_server.url, f"{base}/#", 3) as (broker, got):
        chosen = [m for m in got if not m.raw_message.topic.endswith("/c")]
        results = await MQTTAdapter(broker).delete_many([*chosen, chosen[0]])

    assert [r.target for r in results] == [m.raw_message.topic for m in [*chosen, chosen[0]]]
    assert [r.outcome for r in results] == [
        msgdel.Outcome.DELETED,
        msgdel.Outcome.DELETED,
        msgdel.Outcome.ALREADY_GONE,
    ]
    assert [await retained(mosquitto_server.port, t) for t in topics] == [
        None,
        None,
        topics[2].encode(),
    ]


async def test_without_a_broker_outside_handlers_it_says_how_to_register(
    mosquitto_server: Any,
) -> None:
    topic = _topic("unbound")
    await retain(mosquitto_server.port, topic, b"v")
    async with consumed(mosquitto_server.url, topic, 1) as (_, got):
        with pytest.raises(msgdel.UnsupportedDeletion, match=r"msgdel\.register"):
            await MQTTAdapter().delete(got[0])
    assert await retained(mosquitto_server.port, topic) == b"v"


async def test_a_disconnected_broker_fails_and_keeps_the_retained_message(
    mosquitto_server: Any,
) -> None:
    topic = _topic("closed")
    await retain(mosquitto_server.port, topic, b"v")
    async with consumed(mosquitto_server.url, topic, 1) as (broker, got):
        pass
    with pytest.raises(msgdel.DeletionFailed, match="not connected") as caught:
        await MQTTAdapter(broker).delete(got[0])
    assert caught.value.retryable is True
    assert await retained(mosquitto_server.port, topic) == b"v"


async def test_the_in_memory_test_broker_skips_and_sends_nothing() -> None:
    broker = MQTTBroker()
    got: list[msgdel.DeleteResult] = []

    @broker.subscriber("t")
    async def handle(message: Message) -> None:
        got.append(await msgdel.delete(message))

    async with TestMQTTBroker(broker) as br:
        await br.publish("x", "t", retain=True)

    assert [r.outcome for r in got] == [msgdel.Outcome.SKIPPED]


def test_the_mqtt_adapter_declares_exact_semantics() -> None:
    adapter = MQTTAdapter()
    assert isinstance(adapter, msgdel.Deletable)
    assert adapter.semantics is msgdel.Semantics.EXACT
