"""The docs' Redis code runs as written against the test bed's Redis 8.2.

Each example is given the server by ``REDIS_URL``, as a user would. Handler fragments run in
a real FastStream handler; each spec reads the stream back with redis-py (XLEN, XPENDING).
The adapter's behaviour per Redis version is specified in test_adapter.py and the kit; here
one version shows that the docs' code does what its page says.
"""

from __future__ import annotations

import asyncio
import logging
import re
import runpy
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from faststream import AckPolicy, FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage
from faststream.redis.message import RedisStreamMessage as RedisStreamMessageType
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once
from prometheus_client import REGISTRY

import msgdel
from msgdel import Outcome
from tests.docs_blocks import ROOT, block, check_session, example, printed, run
from tests.eventually import eventually
from tests.observability import Scrape, Spans
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


@pytest.fixture
def observers() -> Iterator[None]:
    """The default registry's observers as they were before the spec, again after it (the
    docs' metrics and tracing code adds its observers there)."""
    before = list(msgdel.default_registry.observers)
    yield
    for observer in list(msgdel.default_registry.observers):
        if not any(observer is b for b in before):
            msgdel.default_registry.remove_observer(observer)


@pytest.fixture
def global_tracer_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's global tracer provider unset for the spec, as in a fresh process, and
    as it was after: the API lets a process set it once (OpenTelemetry's own test helpers
    reset the same two globals)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)


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


# -- docs/adapters/redis.md ------------------------------------------------------------------
async def test_the_other_groups_example_deletes_an_entry_another_group_still_needs(
    redis: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Group "shipping" has the first order pending and has not read the second; "billing"
    deletes both at once, and 8.2's DELREF takes the first out of "shipping"'s PEL too."""
    with redis.client() as client:
        client.xgroup_create("orders", "shipping", id="0", mkstream=True)
        client.xgroup_create("orders", "billing", id="0")
        ids = [client.xadd("orders", {"__data__": f"order-{n}"}).decode() for n in (1, 2)]
        client.xreadgroup("shipping", "s1", {"orders": ">"}, count=1)
        assert client.xpending("orders", "shipping")["pending"] == 1
        lines: list[str] = []

        def handled() -> int:
            lines.extend(printed(capsys.readouterr().out))
            return len(lines)

        with example("docs/examples/redis_other_groups.py") as module:
            async with started(module.app):
                await eventually(handled, 2)
        assert lines == [f"DELETED {i}" for i in ids]
        assert client.xlen("orders") == 0
        assert client.xpending("orders", "shipping")["pending"] == 0
        assert client.xreadgroup("shipping", "s1", {"orders": ">"}) == []  # it never gets it


async def test_the_match_fields_example_keeps_another_order_under_a_replayed_id(
    redis: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While ``ship()`` runs, the stream is deleted and replayed with another order under the
    same explicit id, read by another consumer: it stays in the stream, and pending."""
    with redis.client() as client:
        client.xgroup_create("orders", "shipping", id="0", mkstream=True)
        client.xadd("orders", {"__data__": "order-A"}, id="1-1")

        def replay() -> None:  # atomic, so the app's consumer cannot read the new entry
            with client.pipeline(transaction=True) as pipe:
                pipe.delete("orders")
                pipe.xadd("orders", {"__data__": "order-B"}, id="1-1")
                pipe.xgroup_create("orders", "shipping", id="0")
                pipe.xreadgroup("shipping", "s2", {"orders": ">"})
                pipe.execute()

        shipped: list[str] = []

        async def ship(order: str) -> None:
            shipped.append(order)
            await asyncio.to_thread(replay)

        lines: list[str] = []

        def handled() -> int:
            lines.extend(printed(capsys.readouterr().out))
            return len(lines)

        with example("docs/examples/redis_match_fields.py") as module:
            monkeypatch.setattr(module, "ship", ship)
            async with started(module.app):
                await eventually(handled, 1)
        assert shipped == ["order-A"]
        assert lines == ["ALREADY_GONE 1-1"]
        assert client.xrange("orders") == [(b"1-1", {b"__data__": b"order-B"})]
        (pending,) = client.xpending_range("orders", "shipping", "-", "+", 10)
        assert (pending["message_id"], pending["consumer"]) == (b"1-1", b"s2")  # no XACK either


# -- docs/observability.md -------------------------------------------------------------------
def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=10) as response:
        return Scrape(response.read().decode())


def served_url(capsys: pytest.CaptureFixture[str], lines: list[str]) -> str:
    """The metrics URL the example printed while it started (its startup hook)."""
    lines.extend(printed(capsys.readouterr().out))
    found = [m[1] for line in lines if (m := re.fullmatch(r"metrics on (\S+)", line))]
    assert len(found) == 1, lines
    return found[0]


DELETED = {"broker": "redis", "outcome": "deleted", "semantics": "exact"}


async def test_the_prometheus_example_serves_the_deletions_it_counted(
    redis: Any,
    observers: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It counts in prometheus-client's global REGISTRY, which other code of the process may
    count in as well: the spec reads what this app added."""
    monkeypatch.setenv("METRICS_PORT", "0")
    await publish(redis, "orders", "billing", [{"id": str(n)} for n in range(20)])
    lines: list[str] = []
    with example("docs/examples/prometheus_metrics.py") as module:
        before = REGISTRY.get_sample_value("msgdel_messages_total", DELETED) or 0.0
        async with started(module.app):
            url = served_url(capsys, lines)

            async def counted() -> float:
                got = await asyncio.to_thread(scrape, url)
                return got.value("msgdel_messages_total", **DELETED) or 0.0

            assert await eventually(counted, before + 20) == before + 20
            got = await asyncio.to_thread(scrape, url)
            assert (got.value("msgdel_batcher_max_pending", batcher="default") or 0) >= 10_000
            assert got.value("msgdel_call_messages_count", broker="redis", operation="batch")
    assert state(redis) == (0, 0)
    assert lines == [f"metrics on {url}"]


async def test_the_middleware_metrics_example_counts_in_its_own_registry(
    redis: Any,
    observers: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("METRICS_PORT", "0")
    await publish(redis, "orders", "billing", [{"id": str(n)} for n in range(20)])
    lines: list[str] = []
    in_global = REGISTRY.get_sample_value("msgdel_messages_total", DELETED)
    with example("docs/examples/prometheus_middleware.py") as module:
        async with started(module.app):
            url = served_url(capsys, lines)

            async def counted() -> float:
                got = await asyncio.to_thread(scrape, url)
                return got.value("msgdel_messages_total", **DELETED) or 0.0

            assert await eventually(counted, 20.0) == 20.0
            got = await asyncio.to_thread(scrape, url)
            assert got.value("msgdel_batcher_max_pending", batcher="default") == 10_000
            assert got.value("msgdel_failures_total") is None
    assert REGISTRY.get_sample_value("msgdel_messages_total", DELETED) == in_global
    assert state(redis) == (0, 0)


async def test_instrumenting_otel_makes_a_span_of_a_deletion_in_a_handler(
    redis: Any, observers: None, global_tracer_provider: None
) -> None:
    instrumenting = block("docs/observability.md", "msgdel.otel.instrument()   #")
    spans = Spans()
    trace.set_tracer_provider(spans.provider)  # as the service's own setup would
    await run(instrumenting.code(), {})

    async def fragment(msg: Any, earlier: list[Any]) -> None:
        await msgdel.delete(msg)

    await in_a_handler(redis, 1, fragment)
    (span,) = spans.msgdel()
    assert span.name == "delete orders"
    assert span.kind is trace.SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["messaging.system"] == "redis"
    assert attributes["msgdel.outcome.deleted"] == 1
    assert state(redis) == (0, 0)


async def test_the_tracing_example_joins_the_deletion_to_the_message_trace(
    redis: Any, observers: None, global_tracer_provider: None
) -> None:
    """Each order published through the app's instrumented broker is deleted by the
    middleware in a span of the order's own trace, beside FastStream's ``process`` span."""
    with redis.client() as client:
        client.xgroup_create("orders", "billing", id="0", mkstream=True)
    kept = InMemorySpanExporter()
    with example("docs/examples/otel_tracing.py") as module:
        module.provider.add_span_processor(SimpleSpanProcessor(kept))
        try:
            async with started(module.app):
                for n in range(3):
                    await module.broker.publish({"id": str(n)}, stream="orders")
                assert await eventually(lambda: state(redis), (0, 0)) == (0, 0)

                def deletions() -> int:
                    return sum(s.name == "delete orders" for s in kept.get_finished_spans())

                assert await eventually(deletions, 3) == 3
        finally:
            module.provider.shutdown()
    ended = kept.get_finished_spans()
    created = {s.context.trace_id for s in ended if s.name.endswith(" create")}
    processed = {s.context.trace_id for s in ended if s.name.endswith(" process")}
    deleted = [s for s in ended if s.name == "delete orders"]
    assert len(created) == 3
    assert {s.context.trace_id for s in deleted} == created == processed
    assert all((s.attributes or {})["msgdel.outcome.deleted"] == 1 for s in deleted)


async def test_the_logging_line_logs_one_debug_line_per_deletion(
    redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    debugging = block(
        "docs/observability.md", 'logging.getLogger("msgdel").setLevel(logging.DEBUG)'
    )
    logger = logging.getLogger("msgdel")
    level = logger.level
    try:
        await run(debugging.code(), {})

        async def fragment(msg: Any, earlier: list[Any]) -> None:
            await msgdel.delete(msg)

        await in_a_handler(redis, 1, fragment)
    finally:
        logger.setLevel(level)
    (line,) = [r for r in caplog.records if r.name == "msgdel.deletions"]
    assert line.levelno == logging.DEBUG
    assert re.fullmatch(
        r"delete of 1 messages via redis \(orders\) in \d+\.\d ms: deleted=1", line.getMessage()
    )
    assert (line.broker, line.outcome, line.messages) == ("redis", "deleted", 1)  # type: ignore[attr-defined]
    assert state(redis) == (0, 0)


async def test_the_delete_by_address_example_deletes_two_entries_and_keeps_the_third(
    redis: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with example("docs/examples/delete_by_address.py") as module:
        await module.main(redis.url)
    dry, first, second, again = capsys.readouterr().out.splitlines()
    assert dry == "dry run: ['SKIPPED', 'SKIPPED'] 3"
    assert re.fullmatch(r"DELETED orders \('\d+-\d+',\)", first)
    assert re.fullmatch(r"DELETED orders \('\d+-\d+',\)", second)
    with redis.client() as client:
        ((kept_id, fields),) = client.xrange("orders")
    assert fields == {b"order": b"2"}
    assert again == f"ALREADY_GONE left: [('{kept_id.decode()}', {{'order': '2'}})]"
