"""DeleteMiddleware on a JetStream stream, beyond the conformance kit's middleware cases."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.js.errors
import pytest
from faststream.nats import NatsBroker

import msgdel
from msgdel.faststream import DeleteMiddleware
from tests.nats.harness import JetStreamHarness, unique


async def test_a_failing_handler_keeps_its_messages_with_when_success(nats_server: Any) -> None:
    async def handle(index: int, message: Any) -> None:
        if index % 10 == 0:
            raise ValueError("the handler failed")

    async with JetStreamHarness(nats_server) as harness:
        middleware = DeleteMiddleware(registry=harness.registry)
        handled = await harness.run_app(middleware, 50, handle=handle)
        kept = [ids[0] for index, ids in enumerate(handled.ids) if index % 10 == 0]
        assert await harness.stored(handled.target) == kept


async def test_a_batcher_closed_outside_the_handler_still_deletes_the_kv_entry(
    nats_server: Any,
) -> None:
    """A KV entry carries no connection: the batch that deletes it runs after its handler
    (here: flushed by close(), as on_shutdown does) and must use the broker that received it."""
    bucket_name, key = unique("kvb"), "k"
    batcher = msgdel.Batcher(max_delay=60)
    broker = NatsBroker(nats_server.url, middlewares=[DeleteMiddleware(batcher=batcher)])
    seen = asyncio.Event()

    @broker.subscriber(key, kv_watch=bucket_name)
    async def handle(value: bytes) -> None:
        seen.set()

    async with broker:
        await broker.start()
        bucket = await broker.key_value(bucket_name)
        await bucket.put(key, b"world")
        await asyncio.wait_for(seen.wait(), 10)
        assert batcher.pending == 1  # queued, not sent: the batch waits for close()
        await batcher.close()
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await bucket.get(key)
