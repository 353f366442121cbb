"""DeleteMiddleware against the test bed's Mosquitto: consumed retained messages are cleared."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

import zmqtt
from faststream.mqtt import MQTTBroker
from faststream.mqtt.message import MQTTMessage

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter
from msgdel.faststream import DeleteMiddleware

pytestmark = pytest.mark.mqtt

QOS1 = zmqtt.QoS.AT_LEAST_ONCE


class RecordingAdapter(MQTTAdapter):
    """The real MQTT adapter, keeping the results the middleware does not return."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list[msgdel.DeleteResult] = []

    async def delete_many(self, messages: Sequence[Any], /) -> list[msgdel.DeleteResult]:
        results = await super().delete_many(messages)
        self.results.extend(results)
        return results


def _base(prefix: str) -> str:
    return f"msgdel/mw/{prefix}/{uuid.uuid4().hex[:8]}"


async def _retain(port: int, topic: str, payload: bytes) -> None:
    async with zmqtt.create_client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=QOS1, retain=True)


async def _retained(port: int, topic: str) -> bytes | None:
    """The retained message a brand-new raw subscriber receives on ``topic``, if any."""
    async with (
        zmqtt.create_client("127.0.0.1", port) as client,
        client.subscribe(topic, qos=QOS1) as sub,
    ):
        try:
            message = await asyncio.wait_for(sub.get_message(), 0.5)
        except asyncio.TimeoutError:
            return None
        return message.payload if message.retain else None


@asynccontextmanager
async def watching(port: int, pattern: str) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Record (topic, payload) of every publish a raw subscriber to ``pattern`` sees live."""
    seen: list[tuple[str, bytes]] = []
    async with (
        zmqtt.create_client("127.0.0.1", port) as client,
        client.subscribe(pattern, qos=QOS1) as sub,
    ):

        async def collect() -> None:
            while True:
                message = await sub.get_message()
                seen.append((message.topic, message.payload))

        task = asyncio.create_task(collect())
        try:
            yield seen
            await asyncio.sleep(0.2)  # publishes still in flight reach the watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_app(
    url: str,
    topics: Sequence[str],
    adapter: RecordingAdapter,
    expect: int,
    publish: Callable[[MQTTBroker], Awaitable[None]] | None = None,
) -> list[bytes]:
    """Run an MQTTBroker with DeleteMiddleware, one subscriber per topic, until ``expect``
    messages were handled and their deletions made; the bodies handled."""
    registry = msgdel.Registry()
    registry.register(MQTTMessage, adapter, replace=True)
    broker = MQTTBroker(url, middlewares=[DeleteMiddleware(registry=registry)], logger=None)
    handled: list[bytes] = []
    done = asyncio.Event()

    async def handle(body: bytes) -> None:
        handled.append(body)
        if len(handled) == expect:
            done.set()

    for topic in topics:
        broker.subscriber(topic, qos=QOS1)(handle)

    async with broker:
        await broker.start()
        if publish is not None:
            await publish(broker)
        await asyncio.wait_for(done.wait(), 10)
        for _ in range(100):  # the middleware deletes after the handler returns
            if len(adapter.results) >= expect:
                break
            await asyncio.sleep(0.01)
    return handled


async def test_retained_messages_handled_on_several_topics_are_cleared(
    mosquitto_server: Any,
) -> None:
    port, base = mosquitto_server.port, _base("retained")
    topics = [f"{base}/a", f"{base}/b", f"{base}/c"]
    neighbour = f"{base}/unsubscribed"
    adapter = RecordingAdapter()
    async with watching(port, f"{base}/#") as seen:
        for topic in [*topics, neighbour]:
            await _retain(port, topic, f"v1 {topic}".encode())
        # The broker forwards each clearing publish to live subscribers, the app's own
        # (FastStream subscribes without MQTT 5's no_local): 3 retained + 3 empty echoes.
        handled = await run_app(mosquitto_server.url, topics, adapter, expect=6)

    assert sorted(handled) == [b"", b"", b"", *(f"v1 {t}".encode() for t in topics)]
    assert sorted((r.target, r.outcome, r.removed) for r in adapter.results) == sorted(
        [(t, msgdel.Outcome.DELETED, 1) for t in topics]
        + [(t, msgdel.Outcome.NOTHING_STORED, 0) for t in topics]
    )
    # exactly one clearing publish per handled topic: the echoes are not cleared again
    assert sorted(t for t, payload in seen if payload == b"") == topics
    left = await asyncio.gather(*(_retained(port, t) for t in [*topics, neighbour]))
    assert left == [None, None, None, f"v1 {neighbour}".encode()]


async def test_a_non_retained_message_is_nothing_stored_and_nothing_is_published(
    mosquitto_server: Any,
) -> None:
    port, topic = mosquitto_server.port, _base("live")
    adapter = RecordingAdapter()

    async def publish(broker: MQTTBroker) -> None:
        await broker.publish(b"live", topic, qos=QOS1)

    async with watching(port, topic) as seen:
        await run_app(mosquitto_server.url, [topic], adapter, expect=1, publish=publish)

    assert adapter.results == [
        msgdel.DeleteResult(
            "mqtt", topic, [], msgdel.Semantics.NOT_STORED, msgdel.Outcome.NOTHING_STORED
        )
    ]
    assert seen == [(topic, b"live")]
    assert await _retained(port, topic) is None
