"""Read the test bed's Mosquitto with raw zmqtt clients of their own (no msgdel, no FastStream).

Mosquitto forwards to each subscriber in the order it handled the publishes (and a new
subscription's retained messages before anything handled after it), so a :class:`Watch`
knows it has seen everything the broker forwarded so far once a marker it publishes itself
comes back: no guessed wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import zmqtt

from tests.eventually import eventually

QOS1 = zmqtt.QoS.AT_LEAST_ONCE
WAIT = 10.0
"""Seconds the broker may take to answer on a stalled machine."""
RECONNECT = zmqtt.ReconnectConfig(initial_delay=0.1, max_delay=0.5, max_attempts=None)
"""Reconnect soon and forever: the test bed's broker comes back within a second of a restart."""


async def retain(port: int, messages: dict[str, bytes]) -> None:
    """Publish each payload of ``messages`` as its topic's retained message (QoS 1: once this
    returns, the broker has them)."""
    async with zmqtt.create_client("127.0.0.1", port) as client:
        for topic, payload in messages.items():
            await client.publish(topic, payload, qos=QOS1, retain=True)


class Watch:
    """Every publish the broker forwards to one raw subscriber of ``filters``."""

    def __init__(self, client: zmqtt.MQTTClient, marker: str) -> None:
        self.seen: list[zmqtt.Message] = []
        """What the broker forwarded, in order (the markers left out)."""
        self._client = client
        self._marker = marker
        self._sent = itertools.count(1)
        self._echoed = 0

    @classmethod
    @asynccontextmanager
    async def on(cls, port: int, *filters: str) -> AsyncIterator[Watch]:
        """Subscribe to ``filters`` for the duration of the block."""
        marker = f"msgdel/marker/{uuid.uuid4().hex}"
        async with (
            zmqtt.create_client("127.0.0.1", port, reconnect=RECONNECT) as client,
            client.subscribe(*filters, marker, qos=QOS1) as subscription,
        ):
            watch = cls(client, marker)
            task = asyncio.create_task(watch._collect(subscription))
            try:
                yield watch
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, zmqtt.MQTTError):
                    await task

    async def _collect(self, subscription: zmqtt.Subscription) -> None:
        async for message in subscription:
            if message.topic == self._marker:
                self._echoed = int(message.payload)
            else:
                self.seen.append(message)

    async def caught_up(self) -> Watch:
        """Wait until the watch has seen everything the broker forwarded before this call."""
        sent = next(self._sent)
        await self._client.publish(self._marker, str(sent).encode(), qos=QOS1)
        reached = await eventually(lambda: self._echoed >= sent, True, within=WAIT)
        assert reached, f"Mosquitto did not forward the watch's marker within {WAIT}s"
        return self

    def clears(self) -> list[str]:
        """The topics of the clearing (empty) publishes seen, in order."""
        return [m.topic for m in self.seen if not m.payload]

    def retained(self) -> dict[str, bytes]:
        """The retained messages the subscription was given: topic -> payload."""
        return {m.topic: m.payload for m in self.seen if m.retain and m.payload}


async def retained(port: int, *filters: str) -> dict[str, bytes]:
    """The retained messages a brand-new subscriber of ``filters`` receives: topic -> payload."""
    async with Watch.on(port, *filters) as watch:
        return (await watch.caught_up()).retained()
