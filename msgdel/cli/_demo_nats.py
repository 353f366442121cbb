"""The NATS part of `msgdel demo`: a JetStream stream read by a durable pull consumer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import nats
from faststream import FastStream
from faststream.nats import JStream, NatsBroker, PullSub
from nats.js.api import AckPolicy, DeliverPolicy

from msgdel.cli._scenario import CHUNK, Figure

if TYPE_CHECKING:
    from types import TracebackType

    from nats.aio.client import Client
    from nats.js.client import JetStreamContext

    from msgdel.faststream import DeleteMiddleware

STREAM = "msgdel-demo"
SUBJECT = "msgdel-demo.orders"
DURABLE = "demo"


class NatsDemo:
    """The stream `msgdel-demo` (limits retention), read by the durable consumer `demo`."""

    title = f"JetStream stream {STREAM}, durable consumer {DURABLE}"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Client | None = None

    async def __aenter__(self) -> NatsDemo:
        self._client = await nats.connect(self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def js(self) -> JetStreamContext:
        assert self._client is not None, "use the demo as `async with`"
        return self._client.jetstream()

    async def prepare(self) -> None:
        await self.js.add_stream(name=STREAM, subjects=[SUBJECT])
        await self.js.add_consumer(
            STREAM,
            durable_name=DURABLE,
            filter_subject=SUBJECT,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
        )

    async def publish(self, count: int, advance: Callable[[int], None]) -> None:
        async with NatsBroker(self.url, logger=None) as producer:
            for start in range(0, count, CHUNK):
                chunk = range(start, min(start + CHUNK, count))
                await asyncio.gather(
                    *(
                        producer.publish({"order": i, "item": "book"}, SUBJECT, stream=STREAM)
                        for i in chunk
                    )
                )
                advance(len(chunk))

    def app(self, middleware: DeleteMiddleware, handled: Callable[[], None]) -> FastStream:
        broker = NatsBroker(self.url, middlewares=[middleware], logger=None, graceful_timeout=10)
        pull = PullSub(batch_size=100, timeout=0.5)

        @broker.subscriber(
            SUBJECT, stream=JStream(STREAM, declare=False), durable=DURABLE, pull_sub=pull
        )
        async def fulfil(order: dict[str, Any]) -> None:
            handled()  # ship the order; the middleware deletes the message afterwards

        return FastStream(broker, logger=None)

    async def state(self) -> list[Figure]:
        stream, consumer = await asyncio.gather(
            self.js.stream_info(STREAM), self.js.consumer_info(STREAM, DURABLE)
        )
        floor = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else 0
        return [
            Figure("messages in the stream", int(stream.state.messages), left_behind=True),
            Figure("not delivered yet (num_pending)", consumer.num_pending or 0, left_behind=True),
            Figure(
                "delivered, not acknowledged (num_ack_pending)",
                consumer.num_ack_pending or 0,
                left_behind=True,
            ),
            Figure("acknowledged up to (ack floor, stream seq)", floor, left_behind=False),
        ]
