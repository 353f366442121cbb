"""The Redis adapter against the test bed's real Redis 7 and Redis 8.2."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.redis import RedisBroker, TestRedisBroker
from faststream.redis.message import RedisStreamMessage

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.redis import RedisStreamAdapter
from tests.redis.helpers import consumed, modern, unique

pytestmark = pytest.mark.redis


def entry_ids(client: Any, stream: str) -> list[str]:
    return [i.decode() for i, _ in client.xrange(stream)]


def pending_ids(client: Any, stream: str, group: str) -> list[str]:
    return [p["message_id"].decode() for p in client.xpending_range(stream, group, "-", "+", 100)]


async def test_deleting_a_group_message_removes_its_entry_and_pending_entry_only(
    redis_server: Any,
) -> None:
    stream = unique("orders")
    async with consumed(redis_server.url, stream=stream, group="workers") as (_, msgs):
        client = redis_server.client()
        ids = entry_ids(client, stream)
        assert pending_ids(client, stream, "workers") == ids

        result = await msgdel.delete(msgs[1])

        assert result == msgdel.DeleteResult(
            "redis", stream, (ids[1],), Semantics.EXACT, Outcome.DELETED, 1
        )
        assert client.xlen(stream) == 2
        assert entry_ids(client, stream) == [ids[0], ids[2]]
        assert pending_ids(client, stream, "workers") == [ids[0], ids[2]]


async def test_deleting_twice_reports_already_gone(redis_server: Any) -> None:
    stream = unique("twice")
    async with consumed(redis_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        first = await msgdel.delete(msgs[0])
        second = await msgdel.delete(msgs[0])

    assert (first.outcome, first.removed) == (Outcome.DELETED, 1)
    assert (second.outcome, second.removed) == (Outcome.ALREADY_GONE, 0)
    assert redis_server.client().xlen(stream) == 0


async def test_a_message_read_without_a_group_is_deleted_with_xdel(redis_server: Any) -> None:
    stream = unique("plain")
    async with consumed(redis_server.url, stream=stream, group=None) as (_, msgs):
        client = redis_server.client()
        ids = entry_ids(client, stream)
        result = await msgdel.delete(msgs[0])

        assert result.outcome is Outcome.DELETED
        assert entry_ids(client, stream) == ids[1:]


async def test_a_batch_message_deletes_every_entry_it_holds(redis_server: Any) -> None:
    stream = unique("batch")
    async with consumed(redis_server.url, stream=stream, group="g", publish=5, batch=True) as (
        _,
        msgs,
    ):
        client = redis_server.client()
        held = sum(len(m.raw_message["message_ids"]) for m in msgs)
        assert held == 5
        later = client.xadd(stream, {"later": "1"}).decode()  # a neighbour no batch held

        results = await msgdel.delete_many(msgs)

        assert all(r.outcome is Outcome.DELETED for r in results)
        assert sum(r.removed for r in results) == sum(len(r.ids) for r in results) == 5
        assert entry_ids(client, stream) == [later]
        assert set(pending_ids(client, stream, "g")) <= {later}


async def test_delete_many_costs_one_round_trip_per_stream(redis_server: Any) -> None:
    stream = unique("many")
    async with consumed(redis_server.url, stream=stream, group="g", publish=20) as (_, msgs):
        client = redis_server.client()
        client.config_resetstat()

        results = await msgdel.delete_many(msgs)

        stats = client.info("commandstats")
        assert [r.outcome for r in results] == [Outcome.DELETED] * 20
        assert [r.ids for r in results] == [
            tuple(m.raw_message["message_ids"][0].decode() for _ in [0]) for m in msgs
        ]
        assert client.xlen(stream) == 0
        assert client.xpending(stream, "g")["pending"] == 0
        if modern(redis_server):
            assert stats["cmdstat_xackdel"]["calls"] == 1
            assert "cmdstat_xdel" not in stats
        else:
            assert stats["cmdstat_exec"]["calls"] == 1
            assert stats["cmdstat_xack"]["calls"] == 1
            assert stats["cmdstat_xdel"]["calls"] == 20


async def test_delete_many_keeps_input_order_across_streams(redis_server: Any) -> None:
    a, b = unique("left"), unique("right")
    async with (
        consumed(redis_server.url, stream=a, group="g", publish=2) as (_, from_a),
        consumed(redis_server.url, stream=b, group="g", publish=2) as (_, from_b),
    ):
        mixed = [from_a[0], from_b[0], from_a[1], from_b[1]]
        results = await msgdel.delete_many(mixed)

    assert [r.target for r in results] == [a, b, a, b]
    assert redis_server.client().xlen(a) == redis_server.client().xlen(b) == 0


async def test_by_default_other_groups_lose_the_entry_but_keep_no_dangling_reference(
    redis_server: Any,
) -> None:
    stream = unique("shared")

    async def second_group(broker: RedisBroker) -> None:
        await broker._connection.xgroup_create(stream, "audit", id="0", mkstream=True)

    async with consumed(
        redis_server.url, stream=stream, group="billing", publish=1, prefill=second_group
    ) as (_, msgs):
        client = redis_server.client()
        client.xreadgroup("audit", "a1", {stream: ">"})  # audit has it pending, unacked
        assert client.xpending(stream, "audit")["pending"] == 1

        result = await msgdel.delete(msgs[0])

        assert result.outcome is Outcome.DELETED
        assert client.xlen(stream) == 0
        assert client.xpending(stream, "billing")["pending"] == 0
        # Redis 8.2's DELREF also drops the other group's reference; Redis 7 cannot.
        assert client.xpending(stream, "audit")["pending"] == (0 if modern(redis_server) else 1)


async def test_wait_for_all_groups_defers_until_every_group_acknowledged(
    redis8_server: Any,
) -> None:
    stream = unique("wait")
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, RedisStreamAdapter(wait_for_all_groups=True))

    async def second_group(broker: RedisBroker) -> None:
        await broker._connection.xgroup_create(stream, "audit", id="0", mkstream=True)

    async with consumed(
        redis8_server.url, stream=stream, group="billing", publish=1, prefill=second_group
    ) as (_, msgs):
        client = redis8_server.client()
        (entry_id,) = entry_ids(client, stream)

        deferred = await msgdel.delete(msgs[0], registry=registry)

        assert (deferred.outcome, deferred.removed) == (Outcome.DEFERRED, 0)
        assert client.xlen(stream) == 1
        assert client.xpending(stream, "billing")["pending"] == 0  # acknowledged all the same

        client.xreadgroup("audit", "a1", {stream: ">"})
        client.xack(stream, "audit", entry_id)
        deleted = await msgdel.delete(msgs[0], registry=registry)

        assert (deleted.outcome, deleted.removed) == (Outcome.DELETED, 1)
        assert client.xlen(stream) == 0


async def test_wait_for_all_groups_is_refused_on_redis_7_and_deletes_nothing(
    redis7_server: Any,
) -> None:
    stream = unique("old")
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, RedisStreamAdapter(wait_for_all_groups=True))
    async with consumed(redis7_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        with pytest.raises(UnsupportedDeletion, match=r"Redis >= 8\.2"):
            await msgdel.delete(msgs[0], registry=registry)
        client = redis7_server.client()
        assert client.xlen(stream) == 1
        assert client.xpending(stream, "g")["pending"] == 1


async def test_list_messages_were_popped_on_read(redis_server: Any) -> None:
    name = unique("jobs")
    async with consumed(redis_server.url, list_name=name, publish=1) as (_, msgs):
        result = await msgdel.delete(msgs[0])
    assert (result.semantics, result.outcome) == (Semantics.NOT_STORED, Outcome.ALREADY_GONE)
    assert redis_server.client().llen(name) == 0


async def test_pubsub_messages_were_never_stored(redis_server: Any) -> None:
    async with consumed(redis_server.url, channel=unique("news"), publish=1) as (_, msgs):
        result = await msgdel.delete(msgs[0])
    assert (result.semantics, result.outcome) == (Semantics.NOT_STORED, Outcome.NOTHING_STORED)


async def test_require_exact_accepts_streams_and_popped_lists(redis_server: Any) -> None:
    stream = unique("exact")
    async with consumed(redis_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        result = await msgdel.delete(msgs[0], require=Semantics.EXACT)
    assert result.outcome is Outcome.DELETED


async def test_an_unreachable_server_fails_retryably_and_the_retry_deletes(
    redis7_server: Any,
) -> None:
    stream = unique("outage")
    async with consumed(redis7_server.url, stream=stream, group="g", publish=2) as (_, msgs):
        redis7_server.stop()
        try:
            with pytest.raises(DeletionFailed) as failure:
                await msgdel.delete(msgs[0])
            assert failure.value.retryable
        finally:
            redis7_server.start()
        client = redis7_server.client()
        assert client.xlen(stream) == 2  # nothing was deleted while it was down

        result = await msgdel.delete(msgs[0])
        assert result.outcome is Outcome.DELETED
        assert client.xlen(stream) == 1


async def test_a_stream_message_without_ids_is_not_deletable(redis8_server: Any) -> None:
    stream = unique("noids")
    async with consumed(redis8_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        msgs[0].raw_message["message_ids"] = []
        with pytest.raises(NotDeletable, match="no entry ids"):
            await msgdel.delete(msgs[0])
        assert redis8_server.client().xlen(stream) == 1


async def test_in_memory_test_broker_messages_are_skipped() -> None:
    broker = RedisBroker()
    seen: list[msgdel.DeleteResult] = []

    @broker.subscriber(stream="mem")
    async def handle(body: str, msg: Any = None) -> None:
        from faststream import Context  # noqa: F401

    @broker.subscriber(stream="mem2")
    async def handle2(body: str) -> None:
        pass

    from faststream import BaseMiddleware

    class Delete(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            seen.append(await msgdel.delete(msg))
            return await call_next(msg)

    broker.add_middleware(Delete)
    async with TestRedisBroker(broker) as test_broker:
        await test_broker.publish("x", stream="mem")

    assert [r.outcome for r in seen] == [Outcome.SKIPPED]


async def test_a_message_acknowledged_before_the_delete_is_still_deleted(
    redis_server: Any,
) -> None:
    stream = unique("acked-first")
    async with consumed(redis_server.url, stream=stream, group="g", publish=2) as (_, msgs):
        client = redis_server.client()
        client.xack(stream, "g", msgs[0].raw_message["message_ids"][0])
        assert client.xpending(stream, "g")["pending"] == 1

        result = await msgdel.delete(msgs[0])

        assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
        assert client.xlen(stream) == 1


async def test_messages_faststream_acknowledged_are_deleted_in_one_command(
    redis_server: Any,
) -> None:
    """What the middleware with a batcher meets: FastStream acked before the batch goes out."""
    stream = unique("faststream-acked")
    async with consumed(redis_server.url, stream=stream, group="g", publish=3) as (_, msgs):
        client = redis_server.client()
        for message in msgs[:2]:
            await message.ack()  # FastStream's own XACK after the handler
        client.config_resetstat()

        results = await msgdel.delete_many(msgs)

        assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 3
        assert client.xlen(stream) == 0
        assert client.xpending(stream, "g")["pending"] == 0
        stats = client.info("commandstats")
        if modern(redis_server):  # XDELEX for the acked two, XACKDEL for the third
            assert stats["cmdstat_xdelex"]["calls"] == 1
            assert stats["cmdstat_xackdel"]["calls"] == 1
        else:  # one MULTI, which XACKs all three again: FastStream 0.6 marks a message
            # acknowledged without an XACK when it has no client to send one with
            assert stats["cmdstat_exec"]["calls"] == 1


async def test_a_deleted_group_message_counts_as_acknowledged_for_faststream(
    redis_server: Any,
) -> None:
    stream = unique("no-second-ack")
    async with consumed(redis_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        client = redis_server.client()
        await msgdel.delete(msgs[0])
        client.config_resetstat()

        await msgs[0].ack()  # what FastStream does after the handler

        assert "cmdstat_xack" not in client.info("commandstats")


async def test_a_message_whose_broker_was_closed_is_still_deleted_as_redis_py_reconnects(
    redis8_server: Any,
) -> None:
    stream = unique("closed")
    async with consumed(redis8_server.url, stream=stream, group="g", publish=1) as (_, msgs):
        pass  # leaving the block closes the broker and its connection pool

    result = await msgdel.delete(msgs[0])

    assert result.outcome is Outcome.DELETED
    assert redis8_server.client().xlen(stream) == 0
