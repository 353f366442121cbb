"""The docs' Redis code runs as written against the test bed's Redis 8.2.

Each example is given the server by ``REDIS_URL``, as a user would. Handler fragments run in
a real FastStream handler; each spec reads the stream back with redis-py (XLEN, XPENDING).
The adapter's behaviour per Redis version is specified in test_adapter.py and the kit; here
one version shows that the docs' code does what its page says.
"""

from __future__ import annotations

import asyncio
import runpy
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from faststream import AckPolicy, FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.message import RedisStreamMessage as RedisStreamMessageType

import msgdel
from msgdel import Outcome
from tests.docs_blocks import ROOT, block, check_session, example, run
from tests.eventually import eventually
from tests.redis.harness import StreamHarness, fill

STREAMS = ("orders", "audit")
"""The streams the examples use, emptied before and after each spec."""


@pytest.fixture
def redis(redis8_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The test bed's Redis 8.2, as ``REDIS_URL``, without the examples' streams."""
    monkeypatch.setenv("REDIS_URL", redis8_server.url)
    client = redis8_server.client()
    client.delete(*STREAMS)
    try:
        yield redis8_server
    finally:
        client.delete(*STREAMS)
        client.close()


def state(server: Any, stream: str = "orders") -> tuple[int, int]:
    """(entries the stream holds, entries its groups have pending)."""
    with server.client() as client:
        if not client.exists(stream):
            return 0, 0
        return client.xlen(stream), sum(g["pending"] for g in client.xinfo_groups(stream))


def delivered(server: Any, stream: str, group: str) -> bool:
    """Whether ``group`` was handed every entry of ``stream`` and acknowledged them all."""
    with server.client() as client:
        (info,) = (g for g in client.xinfo_groups(stream) if g["name"].decode() == group)
        last = client.xinfo_stream(stream)["last-generated-id"]
    return bool(info["last-delivered-id"] == last and info["pending"] == 0)


async def publish(server: Any, stream: str, group: str, bodies: list[Any]) -> None:
    """``bodies`` on ``stream`` through FastStream (JSON for dicts), after creating ``group``
    at the stream's start, so a subscriber started later reads every one."""
    with server.client() as client:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    async with RedisBroker(server.url) as producer:
        for body in bodies:
            await producer.publish(body, stream=stream)


@asynccontextmanager
async def started(app: FastStream) -> AsyncIterator[FastStream]:
    """The app started (startup hooks, broker, subscribers), stopped (shutdown hooks) after."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


Fragment = Callable[[Any, list[Any]], Awaitable[None]]


async def in_a_handler(server: Any, count: int, fragment: Fragment, *, fresh: bool = True) -> None:
    """Run a FastStream app whose handler, given ``count`` entries of ``orders`` in a consumer
    group (``AckPolicy.MANUAL``: nothing acknowledged unless deleted), awaits
    ``fragment(msg, earlier)`` on the last one, ``earlier`` being the messages handled before
    it; re-raise what the fragment raised. ``fresh=False``: the caller wrote the entries and
    created the group ``fulfilment``."""
    if fresh:
        with server.client() as client:
            fill(client, "orders", [f"order-{i}" for i in range(count)], group="fulfilment")
    broker = RedisBroker(server.url, graceful_timeout=10)
    handled: list[Any] = []
    raised: list[BaseException] = []
    done = asyncio.Event()

    @broker.subscriber(
        stream=StreamSub("orders", group="fulfilment", consumer="worker-1", polling_interval=10),
        ack_policy=AckPolicy.MANUAL,
    )
    async def handle(body: str, msg: RedisStreamMessage) -> None:
        handled.append(msg)
        if len(handled) == count:
            try:
                await fragment(msg, handled[:-1])
            except BaseException as exc:
                raised.append(exc)
            finally:
                done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
    if raised:
        raise raised[0]


# -- README.md and docs/index.md -------------------------------------------------------------
@pytest.mark.parametrize("page", ["README.md", "docs/index.md"])
async def test_the_first_lines_delete_inside_a_real_handler(page: str, redis: Any) -> None:
    lines = block(page, "result = await msgdel.delete(msg)")
    got: dict[str, Any] = {}

    async def fragment(msg: Any, earlier: list[Any]) -> None:
        got.update(await run(lines.code(), {"msg": msg, "msgs": earlier}))

    await in_a_handler(redis, 3, fragment)
    assert got["result"].outcome is Outcome.DELETED
    assert [r.outcome for r in got["results"]] == [Outcome.DELETED] * 2
    assert state(redis) == (0, 0)


async def test_the_printed_result_is_what_delete_returns_inside_a_handler(redis: Any) -> None:
    session = block("README.md", ">>> await msgdel.delete(msg)")
    with redis.client() as client:
        client.xgroup_create("orders", "fulfilment", id="0", mkstream=True)
        client.xadd("orders", {"__data__": "order"}, id="1795711144902-0")  # the page's id

    async def fragment(msg: Any, earlier: list[Any]) -> None:
        await check_session(session, {"msgdel": msgdel, "msg": msg})

    await in_a_handler(redis, 1, fragment, fresh=False)
    assert state(redis) == (0, 0)


async def test_the_quick_start_handler_deletes_every_order(redis: Any) -> None:
    quick_start = block(
        "README.md", "async def fulfil(order: dict[str, str], msg: RedisStreamMessage)"
    )
    await publish(redis, "orders", "fulfilment", [{"id": str(n)} for n in range(5)])
    app = (await run(quick_start.code(), {}))["app"]
    async with started(app):
        assert await eventually(lambda: state(redis), (0, 0)) == (0, 0)


async def test_the_readme_middleware_deletes_and_closes_the_batcher_on_shutdown(
    redis: Any,
) -> None:
    middleware = block("README.md", "DeleteMiddleware(batcher=batcher)")
    await publish(redis, "orders", "fulfilment", [{"id": str(n)} for n in range(20)])
    namespace = await run(middleware.code(), {})
    async with started(namespace["app"]):
        assert await eventually(lambda: delivered(redis, "orders", "fulfilment"), True)
    assert namespace["batcher"].closed
    assert state(redis) == (0, 0)  # what was still queued was sent on shutdown


def test_the_orders_example_ships_and_deletes_every_order(
    redis: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    runpy.run_path(str(ROOT / "examples/orders.py"), run_name="__main__")
    assert capsys.readouterr().out.splitlines()[-1] == (
        "shipped 5 orders; stream 'orders': 0 entries, 0 pending"
    )
    assert state(redis) == (0, 0)


# -- docs/contract.md and docs/registry.md ---------------------------------------------------
async def test_the_retry_fragment_picks_the_messages_that_failed_retryably(
    redis8_server: Any, own_redis: Any
) -> None:
    """Two servers, one stopped: the fragment retries exactly the stopped server's messages;
    the others are deleted."""
    retry_fragment = block("docs/contract.md", "retry = [m for m, o in zip(msgs, outcomes)")
    up, down = StreamHarness(redis8_server), StreamHarness(own_redis)
    async with up.consumed(2) as alive, down.consumed(2) as gone:
        await down.stop()
        try:
            msgs = [gone.messages[0], alive.messages[0], gone.messages[1], alive.messages[1]]
            namespace = await run(retry_fragment.code(), {"msgs": msgs})
        finally:
            await down.start()
    assert namespace["retry"] == gone.messages
    assert await up.stored(alive.target) == []
    assert await down.stored(gone.target) == [i for (i,) in gone.ids]


async def test_closing_the_registry_on_shutdown_releases_its_adapters(redis: Any) -> None:
    """The default registry's built-in adapter is created anew after the app stopped: the
    shutdown hook closed the one it had."""
    closing = block("docs/registry.md", "async def close_msgdel()")
    app = (await run(closing.code(), {}))["app"]
    before = msgdel.default_registry.resolve(RedisStreamMessageType)
    async with started(app):
        assert msgdel.default_registry.resolve(RedisStreamMessageType) is before
    assert msgdel.default_registry.resolve(RedisStreamMessageType) is not before


# -- docs/batching.md ------------------------------------------------------------------------
async def test_the_middleware_example_deletes_every_order_by_the_time_it_stopped(
    redis: Any,
) -> None:
    await publish(redis, "orders", "billing", [{"id": str(n)} for n in range(20)])
    with example("docs/examples/middleware.py") as module:
        async with started(module.app):
            assert await eventually(lambda: delivered(redis, "orders", "billing"), True)
        assert module.batcher.closed
    assert state(redis) == (0, 0)


async def test_the_deleter_example_deletes_only_the_poison_order(redis: Any) -> None:
    orders = [{"id": "1"}, {"id": "2", "poison": "yes"}, {"id": "3"}]
    await publish(redis, "orders", "billing", orders)
    await publish(redis, "audit", "auditors", [{"event": "login"}])
    with redis.client() as client:
        first, _poison, last = client.xrange("orders")
        with example("docs/examples/deleter.py") as module:
            async with started(module.app):
                assert await eventually(lambda: delivered(redis, "orders", "billing"), True)
                assert await eventually(lambda: state(redis, "audit"), (0, 0)) == (0, 0)
        assert client.xrange("orders") == [first, last]  # acknowledged by FastStream, kept
    assert state(redis) == (2, 0)


async def test_the_batcher_fragment_deletes_both_messages_inside_a_real_handler(
    redis: Any,
) -> None:
    batching = block("docs/batching.md", "async with msgdel.Batcher(")
    got: dict[str, Any] = {}

    async def fragment(msg: Any, earlier: list[Any]) -> None:
        got.update(await run(batching.code(), {"msg": earlier[0], "other": msg}))

    await in_a_handler(redis, 2, fragment)
    assert got["future"].result().outcome is Outcome.DELETED
    assert got["result"].outcome is Outcome.DELETED
    assert got["batcher"].closed
    assert state(redis) == (0, 0)


# -- docs/testing.md -------------------------------------------------------------------------
def test_the_record_deletions_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(ROOT / "docs/examples/record_deletions.py"), run_name="__main__")
    assert capsys.readouterr().out == "deleted: [b'good']\n"


def test_the_pytest_example_passes_with_pytest_asyncio_in_its_default_mode(
    redis: Any, tmp_path: Path
) -> None:
    """The file as a user's project has it: no pytest configuration but pytest-asyncio's
    default mode (strict), the fixture from msgdel's entry point, REDIS_URL set."""
    shutil.copy(ROOT / "docs/examples/test_deleted_orders.py", tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
         "-o", "asyncio_mode=strict", "test_deleted_orders.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout, done.stdout
