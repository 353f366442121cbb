"""DeleteMiddleware against the test bed's RabbitMQ: the queue ends empty, settled once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware

pytestmark = pytest.mark.rabbit


async def ready_messages(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (unsettled ones return there when the consumer closes)."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count)
    finally:
        await connection.close()


async def consume(url: str, queue: str, middleware: DeleteMiddleware, bodies: list[str]) -> None:
    # graceful_timeout: closing waits for the last handlers' middleware (their deletions).
    broker = RabbitBroker(url, middlewares=[middleware], logger=None, graceful_timeout=30)
    handled: list[str] = []
    done = asyncio.Event()

    @broker.subscriber(RabbitQueue(queue))
    async def handle(body: str) -> None:
        handled.append(body)
        if len(handled) == len(bodies):
            done.set()

    async with broker:
        await broker.start()
        for body in bodies:
            await broker.publish(body, queue=queue)
        await asyncio.wait_for(done.wait(), 60)
        if middleware.batcher is not None:  # closed as on_shutdown does: broker still connected
            await middleware.batcher.close()
        # The channel is still open and usable: nothing was settled twice.
        again = asyncio.Event()

        @broker.subscriber(RabbitQueue(f"{queue}-after"))
        async def after(body: str) -> None:
            again.set()

        await broker.start()
        await broker.publish("after", queue=f"{queue}-after")
        await asyncio.wait_for(again.wait(), 10)


@pytest.mark.parametrize("batched", [True, False], ids=["batcher", "direct"])
async def test_a_thousand_handled_messages_leave_the_queue_empty(
    rabbit_server: Any, batched: bool
) -> None:
    queue = f"mw-{uuid.uuid4().hex[:8]}"
    async with Batcher() as batcher:
        middleware = DeleteMiddleware(batcher=batcher if batched else None)
        await consume(rabbit_server.url, queue, middleware, [f"m{i}" for i in range(1000)])
    assert await ready_messages(rabbit_server.url, queue) == 0
