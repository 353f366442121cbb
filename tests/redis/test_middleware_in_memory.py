"""DeleteMiddleware and Deleter inside FastStream's in-memory TestRedisBroker.

The adapter is a real msgdel adapter registered for FastStream's Redis message classes in
its own registry; it records what it was asked to delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from faststream import AckPolicy, BaseMiddleware, Depends
from faststream.exceptions import AckMessage, NackMessage
from faststream.redis import RedisBroker, RedisRouter, StreamSub, TestRedisBroker
from faststream.redis.annotations import RedisStreamMessage as RedisStreamMessageParam
from faststream.redis.message import RedisStreamMessage

import msgdel.testing
from msgdel import BaseAdapter, DeleteResult, DeletionFailed, Features, Outcome, Registry, Semantics
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteFunction, DeleteMiddleware, Deleter, deleter


class Recorder(BaseAdapter):
    features = Features("redis", Semantics.EXACT)

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.calls = 0

    def _one(self, message: Any) -> DeleteResult:
        self.bodies.append(message.body)
        return DeleteResult("redis", "memory", [message.message_id], self.semantics,
                            Outcome.SKIPPED)  # fmt: skip

    async def delete_many(self, messages: Sequence[Any], /) -> Sequence[DeleteResult]:
        self.calls += 1
        return [self._one(m) for m in messages]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(recorder: Recorder) -> Registry:
    registry = Registry(builtins=False)
    registry.register(RedisStreamMessage, recorder)
    return registry


def app(middleware: DeleteMiddleware, **sub: Any) -> RedisBroker:
    broker = RedisBroker(middlewares=[middleware])

    @broker.subscriber(stream=StreamSub("s", group="g", consumer="c"), **sub)
    async def handle(body: str) -> None:
        if body == "fail":
            raise ValueError("handler failed")
        if body == "nack":
            raise NackMessage()
        if body == "ack":
            raise AckMessage()

    return broker


async def publish(broker: RedisBroker, *bodies: str) -> None:
    async with TestRedisBroker(broker) as test_broker:
        for body in bodies:
            await test_broker.publish(body, stream="s")


async def test_a_handled_message_is_deleted(recorder: Recorder, registry: Registry) -> None:
    await publish(app(DeleteMiddleware(registry=registry)), "a", "b")
    assert recorder.bodies == [b"a", b"b"]


async def test_a_failing_handler_keeps_its_message_by_default(
    recorder: Recorder, registry: Registry
) -> None:
    with pytest.raises(ValueError, match="handler failed"):
        await publish(app(DeleteMiddleware(registry=registry)), "ok", "fail")
    assert recorder.bodies == [b"ok"]


async def test_when_always_also_deletes_after_the_handler_raises(
    recorder: Recorder, registry: Registry
) -> None:
    with pytest.raises(ValueError, match="handler failed"):
        await publish(app(DeleteMiddleware("always", registry=registry)), "fail")
    assert recorder.bodies == [b"fail"]


async def test_ack_message_counts_as_success_and_nack_does_not(
    recorder: Recorder, registry: Registry
) -> None:
    await publish(app(DeleteMiddleware(registry=registry)), "ack", "nack")
    assert recorder.bodies == [b"ack"]


async def test_the_middleware_works_on_a_router(recorder: Recorder, registry: Registry) -> None:
    router = RedisRouter(middlewares=[DeleteMiddleware(registry=registry)])

    @router.subscriber(stream="s")
    async def handle(body: str) -> None: ...

    broker = RedisBroker()
    broker.include_router(router)
    await publish(broker, "routed")
    assert recorder.bodies == [b"routed"]


async def test_with_a_batcher_deletions_are_coalesced(
    recorder: Recorder, registry: Registry
) -> None:
    async with Batcher(registry, max_delay=60) as batcher:
        await publish(app(DeleteMiddleware(batcher=batcher)), "a", "b", "c")
        assert recorder.bodies == []
    assert recorder.bodies == [b"a", b"b", b"c"]
    assert recorder.calls == 1


async def test_under_manual_ack_only_what_the_handler_acknowledged_is_deleted(
    recorder: Recorder, registry: Registry
) -> None:
    broker = RedisBroker(middlewares=[DeleteMiddleware(registry=registry)])

    @broker.subscriber(stream=StreamSub("s", group="g", consumer="c"), ack_policy=AckPolicy.MANUAL)
    async def handle(body: str, msg: RedisStreamMessageParam) -> None:
        if body == "acked":
            await msg.ack()

    await publish(broker, "acked", "left")
    assert recorder.bodies == [b"acked"]


async def test_a_handler_can_delete_its_own_message_through_the_dependency(
    recorder: Recorder, registry: Registry
) -> None:
    got: list[DeleteResult] = []
    broker = RedisBroker()
    MyDeleter = Annotated[DeleteFunction, Depends(deleter(registry), cast=False)]

    @broker.subscriber(stream="s")
    async def handle(body: str, delete: MyDeleter) -> None:
        got.append(await delete())

    await publish(broker, "self")
    assert recorder.bodies == [b"self"]
    assert got[0].outcome is Outcome.SKIPPED


async def test_the_default_deleter_skips_messages_of_the_in_memory_broker() -> None:
    broker = RedisBroker()
    got: list[DeleteResult] = []

    @broker.subscriber(stream="s")
    async def handle(body: str, delete: Deleter) -> None:
        got.append(await delete())

    await publish(broker, "x")
    assert [r.outcome for r in got] == [Outcome.SKIPPED]


class Failing(Recorder):
    async def delete_many(self, messages: Sequence[Any], /) -> Sequence[DeleteResult]:
        raise DeletionFailed("broker said no", retryable=False)


async def test_a_failed_deletion_is_logged_and_the_handler_result_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry(builtins=False)
    registry.register(RedisStreamMessage, Failing())
    with caplog.at_level(logging.ERROR, logger="msgdel.faststream"):
        await publish(app(DeleteMiddleware(registry=registry)), "a")
    assert "broker said no" in caplog.text


async def test_on_error_raise_hands_a_failed_deletion_to_faststream() -> None:
    registry = Registry(builtins=False)
    registry.register(RedisStreamMessage, Failing())
    with pytest.raises(DeletionFailed, match="broker said no"):
        await publish(app(DeleteMiddleware(registry=registry, on_error="raise")), "a")


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"when": "sometimes"}, ValueError, "when must be 'success'"),
        ({"on_error": "ignore"}, ValueError, "on_error must be 'log' or 'raise'"),
        ({"batcher": object()}, TypeError, r"msgdel\.Batcher"),
        ({"registry": "redis://x"}, TypeError, r"msgdel\.Registry"),
        ({"batcher": Batcher(), "registry": Registry()}, ValueError, "pass the registry"),
    ],
)
def test_invalid_arguments_are_refused_with_a_clear_message(
    kwargs: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        DeleteMiddleware(**kwargs)


async def test_after_the_batcher_closed_handled_messages_are_deleted_directly(
    recorder: Recorder, registry: Registry
) -> None:
    batcher = Batcher(registry)
    await batcher.close()
    await publish(app(DeleteMiddleware(batcher=batcher)), "late")
    assert recorder.bodies == [b"late"]


@pytest.mark.parametrize("source", ["list", "channel"])
async def test_list_and_pubsub_messages_of_the_in_memory_broker_are_skipped(source: str) -> None:
    registry = Registry()
    middleware = DeleteMiddleware(registry=registry)
    broker = RedisBroker(middlewares=[middleware])

    @broker.subscriber(**{source: "in-memory"})
    async def handle(body: str) -> None: ...

    with msgdel.testing.record_deletions(registry) as deletions:
        async with TestRedisBroker(broker) as test_broker:
            await test_broker.publish("m", **{source: "in-memory"})
    assert [r.outcome for r in deletions.results] == [Outcome.SKIPPED]
    assert deletions.results[0].semantics is Semantics.NOT_STORED


@pytest.mark.parametrize("source", ["list", "channel"])
async def test_with_a_batcher_in_memory_list_and_pubsub_messages_are_still_skipped(
    source: str,
) -> None:
    registry = Registry()
    batcher = Batcher(registry, max_delay=60)  # flushed by close(), outside any handler
    broker = RedisBroker(middlewares=[DeleteMiddleware(batcher=batcher)])

    @broker.subscriber(**{source: "in-memory-batched"})
    async def handle(body: str) -> None: ...

    with msgdel.testing.record_deletions(registry) as deletions:
        async with TestRedisBroker(broker) as test_broker:
            await test_broker.publish("m", **{source: "in-memory-batched"})
            await batcher.close()
    assert [r.outcome for r in deletions.results] == [Outcome.SKIPPED]


async def test_a_handled_message_is_not_kept_alive_by_the_middleware() -> None:
    """Without the cyclic garbage collector, a handled message is freed when its handling
    ends: the middleware leaves no reference cycle through the message (its nack/reject)."""
    import gc
    import weakref

    seen: list[weakref.ref[Any]] = []

    class Track(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            seen.append(weakref.ref(msg))
            return await call_next(msg)

    registry = Registry(builtins=False)
    registry.register(RedisStreamMessage, Recorder())
    broker = RedisBroker(middlewares=[DeleteMiddleware(registry=registry), Track])

    @broker.subscriber(stream=StreamSub("s", group="g", consumer="c"))
    async def handle(body: str) -> None: ...

    gc.disable()
    try:
        async with TestRedisBroker(broker) as test_broker:
            for i in range(5):
                await test_broker.publish(f"m{i}", stream="s")
        assert len(seen) == 5
        assert [ref() for ref in seen] == [None] * 5
    finally:
        gc.enable()


async def test_a_middleware_shared_by_brokers_that_come_and_go_holds_none_of_their_subscribers(
    registry: Registry,
) -> None:
    """The middleware reads each subscriber's acknowledgement policy once, and remembers it
    only as long as the subscriber lives."""
    import gc
    import weakref

    middleware = DeleteMiddleware(registry=registry)
    subscribers: list[weakref.ref[Any]] = []
    for number in range(3):
        broker = app(middleware)
        subscribers.append(weakref.ref(broker.subscribers[0]))
        await asyncio.create_task(publish(broker, f"m{number}"))  # its context ends with it
        del broker
    gc.collect()
    assert [ref() for ref in subscribers] == [None] * 3
