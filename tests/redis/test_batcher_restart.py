"""The Batcher's default retries ride out a Redis restart of several seconds.

What benchmarks/redis_soak.py found: with the middleware's default, FastStream acknowledges a
handled entry itself and the batch deletes it later. A batched deletion that gives up while
Redis restarts leaves that entry in the stream for good: it is no longer pending, so no
consumer is delivered it again and nothing deletes it. The default retries must outlast a
restart."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from msgdel import Outcome
from msgdel.batcher import Batcher
from tests.eventually import eventually
from tests.redis.harness import StreamHarness, entry_ids, pending_ids
from tests.testbed.redis import RedisServer

OUTAGE = 4.5
"""Seconds Redis stays down: longer than the 3.1 s of backoff the default used to allow."""


async def test_a_default_batcher_deletes_what_faststream_acknowledged_across_a_long_restart(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="msgdel.batcher")
    harness = StreamHarness(own_redis)
    async with harness.consumed(20) as got:
        for message in got.messages:
            await message.ack()  # FastStream's own XACK, before the batch goes out
        batcher = Batcher(registry=harness.registry, max_delay=3600)  # default retries
        futures = [await batcher.submit(m) for m in got.messages]
        await harness.stop()
        closing = asyncio.create_task(batcher.close())
        assert await eventually(lambda: "retrying" in caplog.text, True)  # really down
        await asyncio.sleep(OUTAGE)
        await harness.start()
        await asyncio.wait_for(closing, 60)

    assert [f.result().outcome for f in futures] == [Outcome.DELETED] * 20
    client: Any = own_redis.client()
    assert entry_ids(client, got.target) == []
    assert pending_ids(client, got.target) == []
