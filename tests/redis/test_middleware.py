"""DeleteMiddleware and Batcher against the test bed's real Redis: stream and PEL end empty."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.message import RedisStreamMessage as StreamMessageClass

from msgdel import DeleteResult, DeletionFailed, Outcome, Registry
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.batcher import Batcher
from msgdel.compat import bind_to_subscriber
from msgdel.faststream import DeleteMiddleware
from tests.redis.helpers import modern
from tests.testbed.redis import RedisServer, redis8

pytestmark = pytest.mark.redis

_names = iter(range(1_000_000))


def fresh(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def fill(client: Any, stream: str, bodies: list[str], group: str = "g") -> None:
    """Create the group, then add ``bodies`` (FastStream's JSON-less raw format)."""
    client.xgroup_create(stream, group, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for body in bodies:
        pipe.xadd(stream, {"__data__": body})
    pipe.execute()


def pending(client: Any, stream: str, group: str = "g") -> int:
    return int(client.xpending(stream, group)["pending"])


@asynccontextmanager
async def consuming(
    url: str, stream: str, middleware: DeleteMiddleware | None, expected: int, **sub: Any
) -> AsyncIterator[list[Any]]:
    """Run a FastStream app on ``stream`` until ``expected`` messages were handled."""
    # graceful_timeout: closing waits for the last handlers' middleware (their deletions).
    broker = RedisBroker(url, middlewares=[middleware] if middleware else [], graceful_timeout=30)
    handled: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(
        stream=StreamSub(stream, group="g", consumer="c", max_records=100, polling_interval=10),
        **sub,
    )
    async def handle(body: str) -> None:
        handled.append(body)
        if len(handled) == expected:
            done.set()
        if body.startswith("fail"):
            raise ValueError("the handler failed")

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
        yield handled


@pytest.mark.parametrize("batched", [True, False], ids=["batcher", "direct"])
async def test_a_thousand_handled_messages_leave_the_stream_and_its_pel_empty(
    redis_server: RedisServer, batched: bool
) -> None:
    client: Any = redis_server.client()
    stream = fresh("thousand")
    fill(client, stream, [f"m{i}" for i in range(1000)])
    async with Batcher() as batcher:
        middleware = DeleteMiddleware(batcher=batcher if batched else None)
        async with consuming(redis_server.url, stream, middleware, 1000) as handled:
            assert len(handled) == 1000
    assert client.xlen(stream) == 0
    assert pending(client, stream) == 0


async def test_with_a_batcher_the_batch_acknowledges_and_faststream_sends_no_xack(
    redis_server: RedisServer,
) -> None:
    client: Any = redis_server.client()
    stream = fresh("no-xack")
    fill(client, stream, [f"m{i}" for i in range(200)])
    client.config_resetstat()
    async with Batcher() as batcher:
        middleware = DeleteMiddleware(batcher=batcher)
        async with consuming(redis_server.url, stream, middleware, 200):
            await batcher.close()
    stats = client.info("commandstats")
    assert client.xlen(stream) == 0
    assert pending(client, stream) == 0
    xacks = stats.get("cmdstat_xack", {}).get("calls", 0)
    if modern(redis_server):  # XDELEX … DELREF deletes and drops the PEL entries at once
        assert xacks == 0
    else:  # one XACK per batch, inside the batch's MULTI, not one per message
        assert xacks == stats["cmdstat_exec"]["calls"] < 200


class FailingAdapter(RedisStreamAdapter):
    """The real Redis adapter, refusing every deletion (as a broken ACL would)."""

    async def delete_many(self, messages: Any, /) -> list[DeleteResult]:
        raise DeletionFailed("refused for this test", retryable=False)


async def test_an_entry_whose_batched_deletion_failed_stays_pending_in_its_group(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    client: Any = redis_server.client()
    stream = fresh("failed-batch")
    fill(client, stream, ["m0", "m1", "m2"])
    registry = Registry(builtins=False)
    registry.register(StreamMessageClass, FailingAdapter())
    async with Batcher(registry) as batcher:
        middleware = DeleteMiddleware(batcher=batcher)
        async with consuming(redis_server.url, stream, middleware, 3):
            await batcher.close()
    assert "could not delete" in caplog.text
    # neither acknowledged nor deleted: XAUTOCLAIM can hand the entries to a consumer again
    assert client.xlen(stream) == 3
    assert pending(client, stream) == 3


async def test_a_failing_handler_keeps_its_messages_with_when_success(
    redis_server: RedisServer,
) -> None:
    client: Any = redis_server.client()
    stream = fresh("failing")
    bodies = [f"fail{i}" if i % 10 == 0 else f"ok{i}" for i in range(100)]
    fill(client, stream, bodies)
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
    client: Any = redis8_server.client()
    stream = fresh("always")
    fill(client, stream, ["fail0", "ok1", "fail2"])
    async with consuming(redis8_server.url, stream, DeleteMiddleware("always"), 3):
        pass
    assert client.xlen(stream) == 0
    assert pending(client, stream) == 0


async def test_closing_a_batcher_deletes_what_is_pending(redis8_server: RedisServer) -> None:
    client: Any = redis8_server.client()
    stream = fresh("closing")
    fill(client, stream, [f"m{i}" for i in range(50)])
    batcher = Batcher(max_delay=3600)
    async with consuming(redis8_server.url, stream, DeleteMiddleware(batcher=batcher), 50):
        assert batcher.pending == 50
        assert client.xlen(stream) == 50
        await batcher.close()
    assert client.xlen(stream) == 0
    assert pending(client, stream) == 0


@pytest.fixture
async def collected(redis8_server: RedisServer) -> AsyncIterator[tuple[Any, str, list[Any]]]:
    """Forty consumed (and acknowledged) RedisStreamMessages of a fresh stream, and a client."""
    client: Any = redis8_server.client()
    stream = fresh("collected")
    fill(client, stream, [f"m{i}" for i in range(40)])
    broker = RedisBroker(redis8_server.url)
    messages: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", polling_interval=10))
    async def handle(body: str, msg: RedisStreamMessage) -> None:
        bind_to_subscriber(msg)  # kept for after the handler: FastStream 0.6 binds it only here
        messages.append(msg)
        if len(messages) == 40:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 10)
        yield client, stream, messages


async def test_cancelled_callers_do_not_lose_their_deletions(
    collected: tuple[Any, str, list[Any]],
) -> None:
    client, stream, messages = collected
    async with Batcher(max_delay=0.05) as batcher:
        callers = [asyncio.create_task(batcher.delete(m)) for m in messages]
        await asyncio.sleep(0)
        for caller in callers[::2]:
            caller.cancel()
    assert all(c.cancelled() for c in callers[::2])
    assert all(c.result().outcome is Outcome.DELETED for c in callers[1::2])
    assert client.xlen(stream) == 0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis 8.2 of this test alone, so stopping it disturbs no other test."""
    server = redis8(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_a_broker_restarted_mid_batch_settles_every_message_and_deletes_nothing_else(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="msgdel.batcher")
    client: Any = own_redis.client()
    stream = fresh("restart")
    fill(client, stream, [f"m{i}" for i in range(60)])
    client.xadd(stream, {"__data__": "neighbour"})
    broker = RedisBroker(own_redis.url)
    messages: list[Any] = []
    done = asyncio.Event()

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", polling_interval=10))
    async def handle(body: str, msg: RedisStreamMessage) -> None:
        bind_to_subscriber(msg)  # kept for after the handler: FastStream 0.6 binds it only here
        if body != "neighbour":
            messages.append(msg)
        if len(messages) == 60:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 10)
        await broker.stop()  # the consumer loop is not part of this test
        client.save()  # the restarted server loads this snapshot
        client.close()
        batcher = Batcher(max_size=25, max_delay=3600, retries=10, backoff=0.05,
                          max_backoff=0.5)  # fmt: skip
        futures = [await batcher.submit(m) for m in messages]
        await asyncio.to_thread(own_redis.stop)
        flushing = asyncio.create_task(batcher.close())
        await asyncio.sleep(0.3)
        await asyncio.to_thread(own_redis.start)
        await asyncio.wait_for(flushing, 30)

    outcomes: list[DeleteResult | BaseException] = [f.exception() or f.result() for f in futures]
    assert "retrying deletion" in caplog.text  # the broker really was down mid-batch
    assert all(isinstance(o, (DeleteResult, DeletionFailed)) for o in outcomes)
    assert [o.outcome for o in outcomes if isinstance(o, DeleteResult)] == [Outcome.DELETED] * 60
    client = own_redis.client()
    left = [fields[b"__data__"] for _, fields in client.xrange(stream)]
    assert left == [b"neighbour"]


async def test_back_pressure_bounds_what_is_held_while_consuming(
    redis8_server: RedisServer,
) -> None:
    client: Any = redis8_server.client()
    stream = fresh("pressure")
    fill(client, stream, [f"m{i}" for i in range(500)])
    high_water = 0

    async with Batcher(max_size=16, max_delay=0.001, max_pending=32) as batcher:
        original = batcher.submit

        async def watched(message: Any) -> asyncio.Future[DeleteResult]:
            nonlocal high_water
            future = await original(message)
            high_water = max(high_water, batcher.pending)
            return future

        batcher.submit = watched  # type: ignore[method-assign]
        async with consuming(redis8_server.url, stream, DeleteMiddleware(batcher=batcher), 500):
            pass
    assert 0 < high_water <= 32
    assert client.xlen(stream) == 0
    assert pending(client, stream) == 0
