"""DeleteMiddleware and Batcher against the test bed's real Redis: stream and PEL end empty."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from typing import Any

import pytest
from faststream.redis import StreamSub
from faststream.redis.message import RedisStreamMessage

from msgdel import DeleteResult, DeletionFailed, Outcome, Registry
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from msgdel.testing import record_deletions
from tests.eventually import eventually
from tests.redis.harness import (
    CONSUMER,
    GROUP,
    StreamHarness,
    entry_ids,
    fill,
    modern,
    pending_ids,
    running_app,
    unique,
)
from tests.testbed.redis import RedisServer


@asynccontextmanager
async def consuming(
    url: str, stream: str, middleware: DeleteMiddleware | None, expected: int
) -> AsyncIterator[list[str]]:
    """Run a FastStream app on ``stream`` (in the group) until ``expected`` messages were
    handled; its handler raises for a body starting with ``fail``."""
    handled: list[str] = []

    async def handler(body: Any, message: Any) -> None:
        handled.append(body.decode())
        if handled[-1].startswith("fail"):
            raise ValueError("the handler failed")

    sub = StreamSub(stream, group=GROUP, consumer=CONSUMER, max_records=100, polling_interval=10)
    done = lambda: len(handled) >= expected  # noqa: E731
    async with running_app(url, {"stream": sub}, middleware, handler, done):
        yield handled


def filled(server: RedisServer, prefix: str, bodies: list[str]) -> tuple[Any, str]:
    """A client of ``server`` and a fresh stream holding ``bodies`` for the group."""
    client: Any = server.client()
    stream = unique(prefix)
    fill(client, stream, bodies)
    return client, stream


@pytest.mark.parametrize("recording", [False, True], ids=["plain", "recorded"])
async def test_with_a_batcher_the_batch_acknowledges_and_faststream_sends_no_xack(
    redis_server: RedisServer, recording: bool
) -> None:
    """Also while msgdel.testing.record_deletions() observes the deletions."""
    client, stream = filled(redis_server, "no-xack", [f"m{i}" for i in range(200)])
    before = client.info("commandstats")
    with record_deletions() if recording else nullcontext() as deletions:
        async with Batcher() as batcher:
            middleware = DeleteMiddleware(batcher=batcher, leave_ack_to_batch=True)
            async with consuming(redis_server.url, stream, middleware, 200):
                await batcher.close()
    stats = client.info("commandstats")
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream) == []
    if deletions is not None:
        assert len(deletions) == 200
    xacks, scripts = (
        stats.get(f"cmdstat_{name}", {}).get("calls", 0)
        - before.get(f"cmdstat_{name}", {}).get("calls", 0)
        for name in ("xack", "evalsha")
    )
    if modern(redis_server):  # XACKDEL acknowledges and deletes in one command per batch
        assert xacks == 0
    else:  # each entry acknowledged once, inside its batch's script: FastStream sent none
        assert xacks == 200
        assert scripts < 200


class FailingAdapter(RedisStreamAdapter):
    """The real Redis adapter, refusing every deletion (as a broken ACL would)."""

    async def delete_many(self, messages: Any, /) -> list[DeleteResult]:
        raise DeletionFailed("refused for this test", retryable=False)


async def test_an_entry_whose_batched_deletion_failed_stays_pending_in_its_group(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client, stream = filled(redis_server, "failed-batch", ["m0", "m1", "m2"])
    registry = Registry(builtins=False)
    registry.register(RedisStreamMessage, FailingAdapter())
    async with Batcher(registry) as batcher:
        middleware = DeleteMiddleware(batcher=batcher, leave_ack_to_batch=True)
        async with consuming(redis_server.url, stream, middleware, 3):
            await batcher.close()
    assert "could not delete" in caplog.text
    # neither acknowledged nor deleted: XAUTOCLAIM can hand the entries to a consumer again
    assert client.xlen(stream) == 3
    assert len(pending_ids(client, stream)) == 3


async def test_a_failing_handler_keeps_its_messages_with_when_success(
    redis_server: RedisServer,
) -> None:
    bodies = [f"fail{i}" if i % 10 == 0 else f"ok{i}" for i in range(100)]
    client, stream = filled(redis_server, "failing", bodies)
    async with (
        Batcher() as batcher,
        consuming(redis_server.url, stream, DeleteMiddleware(batcher=batcher), 100),
    ):
        pass
    left = [fields[b"__data__"].decode() for _, fields in client.xrange(stream)]
    assert left == [b for b in bodies if b.startswith("fail")]


async def test_when_always_deletes_after_a_failing_handler_too(
    redis8_server: RedisServer,
) -> None:
    client, stream = filled(redis8_server, "always", ["fail0", "ok1", "fail2"])
    async with consuming(redis8_server.url, stream, DeleteMiddleware("always"), 3):
        pass
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream) == []


async def test_closing_a_batcher_deletes_what_is_pending(redis8_server: RedisServer) -> None:
    client, stream = filled(redis8_server, "closing", [f"m{i}" for i in range(50)])
    batcher = Batcher(max_delay=3600)
    async with consuming(redis8_server.url, stream, DeleteMiddleware(batcher=batcher), 50):
        assert batcher.pending == 50
        assert client.xlen(stream) == 50
        await batcher.close()
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream) == []


async def test_cancelled_callers_do_not_lose_their_deletions(redis8_server: RedisServer) -> None:
    harness = StreamHarness(redis8_server)
    async with harness.consumed(40) as got, Batcher(max_delay=0.05) as batcher:
        callers = [asyncio.create_task(batcher.delete(m)) for m in got.messages]
        await asyncio.sleep(0)
        for caller in callers[::2]:
            caller.cancel()
    assert all(c.cancelled() for c in callers[::2])
    assert all(c.result().outcome is Outcome.DELETED for c in callers[1::2])
    assert await harness.stored(got.target) == []


async def test_a_broker_restarted_mid_batch_settles_every_message_and_deletes_nothing_else(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="msgdel.batcher")
    harness = StreamHarness(own_redis)
    async with harness.consumed(60) as got:
        own_redis.client().xadd(got.target, {"__data__": "neighbour"})
        batcher = Batcher(max_size=25, max_delay=3600, retries=10, backoff=0.05,
                          max_backoff=0.5)  # fmt: skip
        futures = [await batcher.submit(m) for m in got.messages]
        await harness.stop()
        flushing = asyncio.create_task(batcher.close())
        assert await eventually(lambda: "retrying" in caplog.text, True)  # really down mid-batch
        await harness.start()
        await asyncio.wait_for(flushing, 30)

    outcomes: list[DeleteResult | BaseException] = [f.exception() or f.result() for f in futures]
    assert all(isinstance(o, (DeleteResult, DeletionFailed)) for o in outcomes)
    assert [o.outcome for o in outcomes if isinstance(o, DeleteResult)] == [Outcome.DELETED] * 60
    client: Any = own_redis.client()
    assert [fields[b"__data__"] for _, fields in client.xrange(got.target)] == [b"neighbour"]


async def test_back_pressure_bounds_what_is_held_while_consuming(
    redis8_server: RedisServer,
) -> None:
    client, stream = filled(redis8_server, "pressure", [f"m{i}" for i in range(500)])
    high_water = 0

    async def watch(batcher: Batcher) -> None:
        nonlocal high_water
        while True:  # every turn of the event loop
            high_water = max(high_water, batcher.pending)
            await asyncio.sleep(0)

    async with Batcher(max_size=16, max_delay=0.001, max_pending=32) as batcher:
        watcher = asyncio.create_task(watch(batcher))
        async with consuming(redis8_server.url, stream, DeleteMiddleware(batcher=batcher), 500):
            pass
        watcher.cancel()
    assert 0 < high_water <= 32
    assert entry_ids(client, stream) == []
    assert pending_ids(client, stream) == []
