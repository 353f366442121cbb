"""DeleteMiddleware follows FastStream's acknowledgement decisions on Redis streams.

What only Redis shows: a batched deletion opens no window in which a claiming consumer
(``XAUTOCLAIM``, ``min_idle_time``) takes the entry again. The cases every broker shares
(``AckPolicy.MANUAL``, nack and reject, a handler deleting its own message, an input whose
result could not be published, kept pending for redelivery) are in the conformance kit.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from typing import Any

import pytest
from faststream.redis import RedisBroker, StreamSub

import msgdel
from msgdel.faststream import DeleteMiddleware
from tests.eventually import eventually

_names = itertools.count()


def fresh(prefix: str) -> str:
    return f"{prefix}-ack-{next(_names)}"


async def _handled_counts(
    url: str, stream: str, count: int, *, leave_ack_to_batch: bool
) -> Counter[str]:
    """Publish ``count`` entries, consume them with a batched middleware on consumer ``c0``
    (whose batches wait 300 ms) while consumer ``c1`` claims entries idle for 50 ms, and count
    how often each body was handled."""
    batcher = msgdel.Batcher(max_delay=0.3)
    middleware = DeleteMiddleware(batcher=batcher, leave_ack_to_batch=leave_ack_to_batch)
    broker = RedisBroker(url, middlewares=[middleware])
    seen: Counter[str] = Counter()

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c0", polling_interval=10))
    async def read(body: str) -> None:
        seen[body] += 1

    @broker.subscriber(
        stream=StreamSub(stream, group="g", consumer="c1", min_idle_time=50, polling_interval=10)
    )
    async def claim(body: str) -> None:
        seen[body] += 1

    async with broker:
        await broker.start()
        for i in range(count):
            await broker.publish(f"m{i}", stream=stream)
        await eventually(lambda: len(seen), count)
        await asyncio.sleep(0.6)  # two batch delays: the window, if there is one, has opened
        await batcher.close()
    return seen


async def test_a_batched_deletion_leaves_no_window_for_a_claiming_consumer(
    redis_server: Any,
) -> None:
    stream = fresh("claimed")
    seen = await _handled_counts(redis_server.url, stream, 20, leave_ack_to_batch=False)
    assert set(seen.values()) == {1}
    client: Any = redis_server.client()
    assert await eventually(lambda: client.xlen(stream), 0) == 0
    assert client.xpending(stream, "g")["pending"] == 0


async def test_leaving_the_acknowledgement_to_the_batch_is_what_opens_that_window(
    redis_server: Any,
) -> None:
    """Why it is off by default: entries wait unacknowledged for their batch, and the
    claiming consumer handles them a second time."""
    stream = fresh("opted")
    seen = await _handled_counts(redis_server.url, stream, 20, leave_ack_to_batch=True)
    assert max(seen.values()) >= 2
    client: Any = redis_server.client()
    assert await eventually(lambda: client.xlen(stream), 0) == 0


async def test_leave_ack_to_batch_is_not_applied_to_a_subscriber_that_claims(
    redis_server: Any,
) -> None:
    stream = fresh("claimer")
    client: Any = redis_server.client()
    client.xgroup_create(stream, "g", id="0", mkstream=True)
    client.xadd(stream, {"__data__": b"stale"})
    client.xreadgroup("g", "gone", {stream: ">"})  # a consumer that died holding it
    client.config_resetstat()
    batcher = msgdel.Batcher()
    broker = RedisBroker(
        redis_server.url, middlewares=[DeleteMiddleware(batcher=batcher, leave_ack_to_batch=True)]
    )
    handled = asyncio.Event()

    @broker.subscriber(
        stream=StreamSub(stream, group="g", consumer="c1", min_idle_time=1, polling_interval=10)
    )
    async def claim(body: str) -> None:
        handled.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(handled.wait(), 10)
        await batcher.close()
    assert client.info("commandstats")["cmdstat_xack"]["calls"] >= 1  # FastStream's own XACK
    assert client.xlen(stream) == 0
    assert client.xpending(stream, "g")["pending"] == 0


def test_leave_ack_to_batch_needs_a_batcher() -> None:
    with pytest.raises(ValueError, match="needs a batcher"):
        DeleteMiddleware(leave_ack_to_batch=True)
