"""How the conformance kit and the RabbitMQ specs drive the test bed's RabbitMQ node.

Messages are published with a ``message_id`` each and consumed through FastStream's
``RabbitBroker``; the broker's state is read back on a separate aio-pika connection.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aiormq.exceptions import ChannelClosed
from faststream import FastStream
from faststream.middlewares import AckPolicy
from faststream.rabbit import QueueType, RabbitBroker, RabbitQueue, TestRabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.message import RabbitMessage as RabbitMessageType

import msgdel
from msgdel.testing.conformance import Consumed, Handle, Harness
from tests.eventually import eventually

RESULT = "handled"
"""What an app's handler returns where :meth:`RabbitHarness.run_app` publishes its results."""


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bodies_of(n: int) -> list[str]:
    return [f"m{i}" for i in range(n)]


def message_ids(queue: str, count: int) -> list[str]:
    """The ``message_id`` of each message :func:`consumed` publishes to ``queue``."""
    return [f"{queue}/{i}" for i in range(count)]


# -- reading the broker's state --------------------------------------------------------------
@asynccontextmanager
async def inspecting(url: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel on a connection of its own (never FastStream's), to read queues with."""
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


async def queue_depth(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (unsettled ones return there when their channel closes)."""
    async with inspecting(url) as channel:
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def drain(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message left in ``queue``, taken from it, once no consumer holds its deliveries.

    A consumer that goes away returns its unsettled deliveries to the queue; a quorum queue
    does so through its log, after the consumer's connection has closed. The queue drops the
    consumer in the same step, so a consumer count of zero says every delivery is back.
    """
    async with inspecting(url) as channel:

        async def consumers() -> int:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.consumer_count or 0)

        held = await eventually(consumers, 0)
        assert held == 0, f"{held} consumer(s) of {queue!r} still hold deliveries"
        declared = await channel.declare_queue(queue, passive=True)
        taken = []
        while (got := await declared.get(no_ack=True, fail=False)) is not None:
            taken.append(got)
        return taken


async def drain_bodies(url: str, queue: str) -> list[str]:
    return [m.body.decode() for m in await drain(url, queue)]


class ChannelWatch:
    """The channels that delivered messages; :meth:`check` after they closed fails if the
    broker closed one (406 PRECONDITION_FAILED: a delivery tag settled twice, or never
    delivered), which would also have put the channel's unsettled deliveries back."""

    def __init__(self) -> None:
        self._closing: dict[int, asyncio.Future[Any]] = {}

    def add(self, message: Any) -> None:
        channel = message.raw_message.channel
        if id(channel) not in self._closing:
            self._closing[id(channel)] = channel.closing

    def check(self) -> None:
        for closing in self._closing.values():
            reason = closing.exception() if closing.done() and not closing.cancelled() else None
            # Closed by the client: ChannelClosed(None, None) or CancelledError.
            by_broker = isinstance(reason, ChannelClosed) and reason.args != (None, None)
            assert not by_broker, f"the broker closed a consuming channel: {reason!r}"


# -- consuming -------------------------------------------------------------------------------
@asynccontextmanager
async def consumed(
    url: str,
    queue: RabbitQueue,
    bodies: list[str],
    *,
    ack_policy: AckPolicy = AckPolicy.MANUAL,
    headers: dict[str, Any] | None = None,
    **subscriber: Any,
) -> AsyncIterator[list[Any]]:
    """Publish ``bodies`` (with :func:`message_ids`) to ``queue`` and hold every consumed
    FastStream message, in delivery order, unsettled under ``AckPolicy.MANUAL``.

    Leaving the block closes the broker: deliveries still unsettled go back to the queue.
    It then fails if the broker closed the consuming channel (:class:`ChannelWatch`).
    """
    broker = RabbitBroker(url, logger=None)
    got: list[Any] = []
    done = asyncio.Event()
    watch = ChannelWatch()

    @broker.subscriber(queue, ack_policy=ack_policy, **subscriber)
    async def handle(body: str, message: RabbitMessage) -> None:
        watch.add(message)
        got.append(message)
        if len(got) == len(bodies):
            done.set()

    async with broker:
        await broker.start()
        for body, message_id in zip(bodies, message_ids(queue.name, len(bodies)), strict=True):
            await broker.publish(
                body, queue=queue.name, persist=True, message_id=message_id, headers=headers
            )
        await asyncio.wait_for(done.wait(), 10)
        # Handlers run concurrently and may start out of order; delivery order is queue order.
        got.sort(key=lambda m: m.raw_message.delivery_tag)
        yield list(got)  # not the redeliveries that a nack within the block brings
    watch.check()


def delivery_ids(messages: list[Any]) -> list[tuple[str, ...]]:
    """What a :class:`~msgdel.DeleteResult` reports for each message: its delivery tag."""
    return [(str(m.raw_message.delivery_tag),) for m in messages]


# -- the harness -----------------------------------------------------------------------------
class RabbitHarness(Harness):
    """Messages of a fresh queue of ``queue_type``, consumed with ``AckPolicy.MANUAL``.

    A result names a message by its delivery tag, which a redelivery changes, so the harness
    remembers each consumed delivery's ``message_id``: :meth:`stored` reads the message ids
    left in the queue and answers with the delivery tags they were consumed under.
    """

    def __init__(self, url: str, queue_type: QueueType = QueueType.CLASSIC) -> None:
        self.url = url
        self.queue_type = queue_type
        self._registry = msgdel.Registry()
        self._ids: dict[str, dict[str, str]] = {}  # queue -> message_id -> reported id

    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    @property
    def message_type(self) -> type:
        return RabbitMessageType

    def queue(self) -> RabbitQueue:
        """A fresh queue of this harness's type."""
        return RabbitQueue(new_name(self.queue_type.value), queue_type=self.queue_type)

    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        queue = self.queue()
        async with consumed(self.url, queue, bodies_of(count)) as messages:
            ids = delivery_ids(messages)
            self._ids[queue.name] = {m.message_id: i for m, (i,) in zip(messages, ids, strict=True)}
            yield Consumed(queue.name, messages, ids)

    async def stored(self, target: Any) -> list[str]:
        left = [m.message_id or m.body.decode() for m in await drain(self.url, target)]
        known = self._ids.get(target, {})
        return [i for m, i in known.items() if m in left] + [m for m in left if m not in known]

    async def requests(self, target: Any) -> int:
        """RabbitMQ cannot tell: consumers settle with ``basic.ack``/``basic.reject`` frames
        the broker never answers, and it keeps no per-queue or per-channel count of them
        (``rabbitmqctl list_queues``/``list_channels`` show how many deliveries are
        unacknowledged, not how many frames settled them; the management plugin, which this
        test bed does not run, counts acknowledged messages, not frames either)."""
        raise NotImplementedError

    @asynccontextmanager
    async def in_memory(self, count: int) -> AsyncIterator[list[Any]]:
        broker = RabbitBroker()
        queue = self.queue()
        got: list[Any] = []

        @broker.subscriber(queue, ack_policy=AckPolicy.MANUAL)
        async def handle(body: str, message: RabbitMessage) -> None:
            got.append(message)

        async with TestRabbitBroker(broker) as test_broker:
            for body in bodies_of(count):
                await test_broker.publish(body, queue=queue.name)
            yield got

    async def run_app(
        self,
        middleware: Any,
        count: int,
        *,
        handle: Handle | None = None,
        ack_policy: AckPolicy | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        publishes: bool = False,
    ) -> Consumed:
        """A FastStream app on a fresh queue; a delivery's index is found by its
        ``message_id``. With ``publishes`` the handler returns :data:`RESULT`, published (by
        the default exchange) to the routing key ``<queue>-out``. Fails if the broker closed
        the channel that delivered the messages."""
        middlewares = list(middleware) if isinstance(middleware, Sequence) else [middleware]
        # graceful_timeout: stopping waits for the last handlers' middleware (their deletions).
        broker = RabbitBroker(self.url, middlewares=middlewares, logger=None, graceful_timeout=30)
        app = FastStream(broker)
        if on_shutdown is not None:
            app.on_shutdown(on_shutdown)
        queue = self.queue()
        ids = message_ids(queue.name, count)
        self._ids[queue.name] = dict(zip(ids, ids, strict=True))
        index_of = {message_id: index for index, message_id in enumerate(ids)}
        unhandled = set(index_of.values())
        done = asyncio.Event()
        watch = ChannelWatch()
        options = {} if ack_policy is None else {"ack_policy": ack_policy}

        async def handler(body: str, message: RabbitMessage) -> str | None:
            watch.add(message)
            index = index_of[message.message_id]
            try:
                if handle is not None:
                    await handle(index, message)
            finally:
                unhandled.discard(index)
                if not unhandled:
                    done.set()
            return RESULT if publishes else None

        call: Any = broker.publisher(f"{queue.name}-out")(handler) if publishes else handler
        broker.subscriber(queue, **options)(call)

        await app.start()
        try:
            for body, message_id in zip(bodies_of(count), ids, strict=True):
                await broker.publish(body, queue=queue.name, message_id=message_id)
            await asyncio.wait_for(done.wait(), 60)
        finally:
            await app.stop()
        watch.check()
        return Consumed(queue.name, [], [(i,) for i in ids])
