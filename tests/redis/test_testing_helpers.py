"""msgdel.testing: a user's test can assert which messages were asked to be deleted."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
from pathlib import Path

from faststream.redis import RedisBroker, StreamSub, TestRedisBroker
from faststream.redis.annotations import RedisStreamMessage

import msgdel
from msgdel import Outcome, Registry, default_registry
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from msgdel.testing import Deletions, record_deletions
from msgdel.testing.pytest_plugin import msgdel_deletions  # noqa: F401 - the fixture


def make_app(middleware: DeleteMiddleware) -> RedisBroker:
    broker = RedisBroker(middlewares=[middleware])

    @broker.subscriber(stream=StreamSub("orders", group="g", consumer="c"))
    async def handle(body: str) -> None:
        if body == "bad":
            raise ValueError("rejected order")

    return broker


async def publish(broker: RedisBroker, *bodies: str) -> None:
    async with TestRedisBroker(broker) as test_broker:
        for body in bodies:
            with contextlib.suppress(ValueError):
                await test_broker.publish(body, stream="orders")


async def test_the_middleware_deletions_under_the_test_broker_are_recorded_and_skipped() -> None:
    with record_deletions() as deletions:
        await publish(make_app(DeleteMiddleware()), "a", "bad", "b")
    assert deletions.bodies == [b"a", b"b"]
    assert [r.outcome for r in deletions.results] == [Outcome.SKIPPED] * 2
    assert len(deletions.skipped) == 2


async def test_batched_deletions_are_recorded_once_the_batcher_flushes() -> None:
    with record_deletions() as deletions:
        async with Batcher() as batcher:
            await publish(make_app(DeleteMiddleware(batcher=batcher)), "a", "b")
    assert deletions.bodies == [b"a", b"b"]


async def test_direct_delete_calls_are_recorded() -> None:
    got: list[msgdel.DeleteResult] = []
    broker = RedisBroker()

    @broker.subscriber(stream="orders")
    async def handle(body: str, message: RedisStreamMessage) -> None:
        got.append(await msgdel.delete(message))

    with record_deletions() as deletions:
        await publish(broker, "direct")
    assert deletions.messages
    assert deletions.bodies == [b"direct"]
    assert got[0].outcome is Outcome.SKIPPED


async def test_nothing_is_recorded_after_the_block_and_the_registry_is_restored() -> None:
    observers = default_registry.observers
    with record_deletions() as deletions:
        assert len(default_registry.observers) == len(observers) + 1
    assert default_registry.observers == observers
    await publish(make_app(DeleteMiddleware()), "late")
    assert len(deletions) == 0


async def test_recordings_nest_and_a_custom_registry_can_be_recorded() -> None:
    registry = Registry()
    with record_deletions(registry) as outer, record_deletions(registry) as inner:
        await publish(make_app(DeleteMiddleware(registry=registry)), "x")
    assert outer.bodies == inner.bodies == [b"x"]


async def test_the_fixture_records_the_deletions_of_the_test(
    msgdel_deletions: Deletions,  # noqa: F811
) -> None:
    await publish(make_app(DeleteMiddleware()), "from-fixture")
    assert msgdel_deletions.bodies == [b"from-fixture"]


def test_the_plugin_offers_the_fixture_to_a_users_test_suite(tmp_path: Path) -> None:
    test_file = tmp_path / "test_user.py"
    test_file.write_text(
        textwrap.dedent("""
        from faststream.redis import RedisBroker, TestRedisBroker
        from msgdel.faststream import DeleteMiddleware

        broker = RedisBroker(middlewares=[DeleteMiddleware()])

        @broker.subscriber(stream="orders")
        async def handle(body: str) -> None: ...

        async def test_orders_are_deleted(msgdel_deletions):
            async with TestRedisBroker(broker) as br:
                await br.publish("hello", stream="orders")
            assert msgdel_deletions.bodies == [b"hello"]
    """)
    )
    done = subprocess.run(
        # no -p: the fixture comes from msgdel's pytest11 entry point, as in a user's project
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", str(test_file)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
