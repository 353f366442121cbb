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
from tests.mqtt.helpers import QOS1, retain, retained
from tests.eventually import eventually

pytestmark = pytest.mark.mqtt


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
            await asyncio.sleep(0.2)  # an unexpected publish still in flight reaches it too
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def clears(seen: list[tuple[str, bytes]]) -> list[str]:
    """The topics of the clearing (empty, retained-clearing) publishes seen, sorted."""
    return sorted(topic for topic, payload in seen if payload == b"")


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
    # graceful_timeout: closing waits for the last handlers' middleware (their deletions).
    broker = MQTTBroker(
        url, middlewares=[DeleteMiddleware(registry=registry)], logger=None, graceful_timeout=30
    )
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
            await retain(port, topic, f"v1 {topic}".encode())
        # The broker forwards each clearing publish to live subscribers, the app's own
        # (FastStream subscribes without MQTT 5's no_local): 3 retained + 3 empty echoes.
        handled = await run_app(mosquitto_server.url, topics, adapter, expect=6)
        await eventually(lambda: clears(seen), topics)

    assert sorted(handled) == [b"", b"", b"", *(f"v1 {t}".encode() for t in topics)]
    assert sorted((r.target, r.outcome, r.removed) for r in adapter.results) == sorted(
        [(t, msgdel.Outcome.DELETED, 1) for t in topics]
        + [(t, msgdel.Outcome.NOTHING_STORED, 0) for t in topics]
    )
    # exactly one clearing publish per handled topic: the echoes are not cleared again
    assert clears(seen) == topics
    left = await asyncio.gather(*(retained(port, t) for t in [*topics, neighbour]))
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
        await eventually(lambda: list(seen), [(topic, b"live")])

    assert adapter.results == [
        msgdel.DeleteResult(
            "mqtt", topic, [], msgdel.Semantics.NOT_STORED, msgdel.Outcome.NOTHING_STORED
        )
    ]
    assert seen == [(topic, b"live")]
    assert await retained(port, topic) is None
