"""The conformance kit's harnesses for MQTT on the test bed's Mosquitto.

MQTT stores one retained message per topic, so a kit "target" with several messages is a
fresh topic prefix with one topic per message (``<prefix>/00``, ``<prefix>/01``, ...). The
adapter reports each message's topic as its target and as its id; :meth:`MQTTHarness.stored`
gives the topics under the prefix that still retain a message, read by a brand-new raw
subscriber. :meth:`MQTTHarness.requests` counts the clearing (empty) publishes the broker
forwarded to a raw subscriber of the prefix that watches from the moment the target is made.
The adapter sends one clear per topic, so the kit's per-target coalescing count, made for
brokers whose target holds many messages, does not apply (see test_conformance.py).
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from faststream import AckPolicy, Context
from faststream.mqtt import MQTTBroker, TestMQTTBroker
from faststream.mqtt.message import MQTTMessage

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter
from msgdel.address import Address, RetainedTopic
from msgdel.semantics import Semantics
from msgdel.testing.conformance import Consumed, Handle, Harness
from tests.mqtt.helpers import QOS1, RECONNECT, WAIT, Watch, retain, retained

Message = Annotated[Any, Context("message")]


RESULT = b"handled"
"""What a handler returns where :meth:`MQTTHarness.run_app` publishes its results."""


def fresh_prefix() -> str:
    """A topic prefix no other test uses."""
    return f"msgdel/kit/{uuid.uuid4().hex[:12]}"


def topics_under(prefix: str, count: int) -> list[str]:
    """One topic per message, sorting in publishing order."""
    return [f"{prefix}/{i:02d}" for i in range(count)]


class MQTTHarness(Harness):
    """Consumes through one FastStream ``MQTTBroker``, the one the registry's adapter is bound
    to (``MQTTAdapter(broker)``, as an application registers it). A subclass says whether its
    messages arrive retained: published retained before subscribing, or live after."""

    retained: bool
    """Whether the messages this harness consumes arrived as retained messages."""

    def __init__(self, server: Any) -> None:
        self.server = server
        # graceful_timeout: closing waits for the handlers in flight (and their deletions).
        self.broker = MQTTBroker(
            server.url, logger=None, reconnect=RECONNECT, graceful_timeout=WAIT
        )
        self._registry = msgdel.Registry()
        self._registry.register(MQTTMessage, MQTTAdapter(self.broker))
        self._watches: dict[str, Watch] = {}
        self._stack = AsyncExitStack()

    async def aclose(self) -> None:
        """Close the watches (use ``contextlib.aclosing(harness)``)."""
        await self._stack.aclose()

    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    @property
    def message_type(self) -> type:
        return MQTTMessage

    # -- publishing and consuming ----------------------------------------------------------
    async def watch(self, prefix: str) -> Watch:
        """Count the clearing publishes under ``prefix`` from now on, until the harness closes."""
        watch = await self._stack.enter_async_context(Watch.on(self.server.port, f"{prefix}/#"))
        self._watches[prefix] = watch
        return watch

    @asynccontextmanager
    async def consume(
        self,
        topics: Sequence[str],
        filters: Sequence[str],
        existing: Sequence[str] = (),
        *,
        handle: Handle | None = None,
        ack_policy: AckPolicy | None = None,
        publish_to: str | None = None,
    ) -> AsyncIterator[tuple[list[Any], list[Any]]]:
        """Publish one message to each of ``topics`` (retained before subscribing, or live
        after), subscribe to ``filters`` through :attr:`broker`, and yield, the broker
        running, the message each topic delivered (``topics``, then the ``existing`` topics
        that retain a message already, in order) and the subscribers.

        The handler awaits ``handle(index, message)`` for each delivery of them; the empty
        echoes of clearing publishes are other messages and only pass through. With
        ``publish_to`` the handler returns :data:`RESULT`, published (not retained) there."""
        wanted = {t: i for i, t in enumerate([*topics, *existing])}
        got: dict[str, Any] = {}
        arrived = asyncio.Event()
        if self.retained:
            await retain(self.server.port, {t: f"retained {t}".encode() for t in topics})

        async def handler(message: Message) -> bytes | None:
            raw = message.raw_message
            if raw.topic in wanted and raw.payload and raw.retain is self.retained:
                got.setdefault(raw.topic, message)
                if len(got) == len(wanted):
                    arrived.set()
                if handle is not None:
                    await handle(wanted[raw.topic], message)
            return None if publish_to is None else RESULT

        call: Any = handler
        if publish_to is not None:
            call = self.broker.publisher(publish_to, qos=QOS1)(handler)
        options = {} if ack_policy is None else {"ack_policy": ack_policy}
        with warnings.catch_warnings():
            # FastStream warns that NACK_ON_ERROR sends no nack (MQTT has none); the kit
            # asks for it knowingly: a failed handling is then not acknowledged
            warnings.filterwarnings("ignore", "MQTT has no nack primitive")
            subscribers = [self.broker.subscriber(f, qos=QOS1, **options) for f in filters]
        for subscriber in subscribers:
            subscriber(call)
        async with self.broker:
            await self.broker.start()
            if not self.retained:
                for topic in topics:
                    await self.broker.publish(f"live {topic}".encode(), topic, qos=QOS1)
            await asyncio.wait_for(arrived.wait(), WAIT)
            yield list(got[t] for t in wanted), subscribers

    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        prefix = fresh_prefix()
        topics = topics_under(prefix, count)
        await self.watch(prefix)
        async with self.consume(topics, [f"{prefix}/#"]) as (messages, _):
            yield Consumed(prefix, messages, [(t,) for t in topics])

    async def run_app(
        self,
        middleware: Any,
        count: int,
        *,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        publishes: bool = False,
        **handling: Any,
    ) -> Consumed:
        """Run :attr:`broker` with ``middleware`` (one, or a sequence, outermost first)
        until each of ``count`` messages was handled (``handling``: ``handle`` and
        ``ack_policy``, as :meth:`consume` takes them), then shut down as an application
        does: stop consuming (the handlers in flight finish), run ``on_shutdown`` while
        connected, disconnect. With ``publishes`` the handler's results go to the topic
        ``<prefix>-out``, outside the target's ``<prefix>/#``."""
        prefix = fresh_prefix()
        topics = topics_under(prefix, count)
        await self.watch(prefix)
        for each in middleware if isinstance(middleware, Sequence) else [middleware]:
            self.broker.add_middleware(each)
        if publishes:
            handling["publish_to"] = f"{prefix}-out"
        async with self.consume(topics, [f"{prefix}/#"], **handling) as (_, subscribers):
            for subscriber in subscribers:
                await subscriber.stop()
            if on_shutdown is not None:
                await on_shutdown()
        return Consumed(prefix, [], [(t,) for t in topics])

    @asynccontextmanager
    async def in_memory(self, count: int) -> AsyncIterator[list[Any]]:
        topic = f"{fresh_prefix()}/in-memory"
        got: list[Any] = []

        @self.broker.subscriber(topic)
        async def handle(message: Message) -> None:
            got.append(message)

        async with TestMQTTBroker(self.broker) as broker:
            for i in range(count):
                await broker.publish(f"m{i}", topic, retain=self.retained)
            yield got

    # -- the broker's own state --------------------------------------------------------------
    async def stored(self, target: Any) -> list[str]:
        return sorted(await retained(self.server.port, f"{target}/#"))

    async def requests(self, target: Any) -> int:
        return len((await self._watches[target].caught_up()).clears())

    restartable = True
    """The session's Mosquitto: this backend's tests run one at a time in one process, and
    the test bed runs it with persistence on, so retained messages survive the restart."""

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)


class RetainedHarness(MQTTHarness):
    """Messages that arrived retained: the adapter clears their topics (``EXACT``)."""

    retained = True

    def addresses(self, consumed: Consumed) -> list[Address]:
        return [RetainedTopic(topic) for ids in consumed.ids for topic in ids]

    def connection(self) -> str:
        return str(self.server.url)


class LiveHarness(MQTTHarness):
    """Messages published while subscribed: the broker never stored them (``NOT_STORED``)."""

    retained = False

    @property
    def semantics(self) -> Semantics:
        return Semantics.NOT_STORED
