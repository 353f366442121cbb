"""DeleteMiddleware against the test bed's NATS: a consumed JetStream stream ends empty."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
import pytest
from faststream.nats import JStream, NatsBroker

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware

pytestmark = pytest.mark.nats


async def stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


async def consume(url: str, stream: str, middleware: DeleteMiddleware, bodies: list[str]) -> None:
    # graceful_timeout: closing waits for the last handlers' middleware (their deletions).
    broker = NatsBroker(url, middlewares=[middleware], logger=None, graceful_timeout=30)
    handled: list[str] = []
    done = asyncio.Event()

    @broker.subscriber(f"{stream}.in", stream=JStream(stream))
    async def handle(body: str) -> None:
        handled.append(body)
        if len(handled) == len(bodies):
            done.set()
        if body.startswith("fail"):
            raise ValueError("the handler failed")

    async with broker:
        await broker.start()
        for body in bodies:
            await broker.publish(body, f"{stream}.in", stream=stream)
        await asyncio.wait_for(done.wait(), 30)
        if middleware.batcher is not None:  # closed as on_shutdown does: broker still connected
            await middleware.batcher.close()


@pytest.mark.parametrize("batched", [True, False], ids=["batcher", "direct"])
async def test_a_thousand_handled_messages_leave_the_jetstream_stream_empty(
    nats_server: Any, batched: bool
) -> None:
    stream = f"mw_{'b' if batched else 'd'}"
    async with Batcher() as batcher:
        middleware = DeleteMiddleware(batcher=batcher if batched else None)
        await consume(nats_server.url, stream, middleware, [f"m{i}" for i in range(1000)])
    assert await stream_messages(nats_server.url, stream) == 0


async def test_a_failing_handler_keeps_its_messages_with_when_success(nats_server: Any) -> None:
    bodies = [f"fail{i}" if i % 10 == 0 else f"ok{i}" for i in range(50)]
    await consume(nats_server.url, "mw_fail", DeleteMiddleware(), bodies)
    assert await stream_messages(nats_server.url, "mw_fail") == 5
