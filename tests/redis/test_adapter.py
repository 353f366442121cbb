"""The Redis adapter's own specs against the test bed's real Redis 7 and Redis 8.2, beside the
conformance kit (test_conformance.py): other consumer groups, wait_for_all_groups, messages
FastStream acknowledged, several streams and clients in one batch."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.redis.message import RedisStreamMessage

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.redis import RedisStreamAdapter
from tests.redis.harness import (
    GROUP,
    ChannelHarness,
    ListHarness,
    StreamHarness,
    entry_ids,
    modern,
    pending_ids,
)


def waiting_registry() -> msgdel.Registry:
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, RedisStreamAdapter(wait_for_all_groups=True))
    return registry


def calls(client: Any, *commands: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


async def test_delete_many_across_streams_keeps_input_order_in_one_round_trip(
    redis_server: Any,
) -> None:
    """One Redis client, two streams. Redis 7: one MULTI holding one XACK per stream and one
    XDEL per message; Redis 8.2: one XACKDEL per stream, pipelined."""
    left, right = StreamHarness(redis_server), StreamHarness(redis_server)
    async with left.consumed(2) as a, right.consumed(2) as b:
        for message in b.messages:  # one broker reading both streams binds one client
            message.consumer = a.messages[0].consumer
        client = redis_server.client()
        before = calls(client, "exec", "xack", "xdel", "xackdel")
        mixed = [a.messages[0], b.messages[0], a.messages[1], b.messages[1]]
        results = await msgdel.delete_many(mixed, registry=left.registry)
        after = calls(client, *before)
    assert [(r.target, r.outcome) for r in results] == [
        (a.target, Outcome.DELETED), (b.target, Outcome.DELETED),
        (a.target, Outcome.DELETED), (b.target, Outcome.DELETED),
    ]  # fmt: skip
    assert await left.stored(a.target) == await right.stored(b.target) == []
    sent = {c: after[c] - before[c] for c in before}
    if modern(redis_server):
        assert sent == {"exec": 0, "xack": 0, "xdel": 0, "xackdel": 2}
    else:
        assert sent == {"exec": 1, "xack": 2, "xdel": 4, "xackdel": 0}


async def test_a_failing_client_fails_its_own_messages_only(
    redis_server: Any, own_redis: Any
) -> None:
    """One batch, two Redis clients: the stopped server's messages fail retryably, the
    other server's are deleted."""
    up, down = StreamHarness(redis_server), StreamHarness(own_redis)
    async with up.consumed(2) as alive, down.consumed(2) as gone:
        await down.stop()
        try:
            mixed = [gone.messages[0], alive.messages[0], gone.messages[1], alive.messages[1]]
            outcomes = await msgdel.delete_many(mixed, registry=up.registry, return_exceptions=True)
        finally:
            await down.start()
    failed, deleted = outcomes[0::2], outcomes[1::2]
    assert all(isinstance(o, DeletionFailed) and o.retryable for o in failed)
    assert [getattr(o, "outcome", o) for o in deleted] == [Outcome.DELETED] * 2
    assert await up.stored(alive.target) == []
    assert await down.stored(gone.target) == [i for (i,) in gone.ids]


async def test_by_default_other_groups_lose_the_entry_but_keep_no_dangling_reference(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    async with harness.consumed(1) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "audit", id="0")
        client.xreadgroup("audit", "a1", {got.target: ">"})  # audit has it pending, unacked
        result = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert result.outcome is Outcome.DELETED
    assert await harness.stored(got.target) == []  # billing's PEL is checked there too
    # Redis 8.2's DELREF also drops the other group's reference; Redis 7 cannot.
    audit = pending_ids(client, got.target, "audit")
    assert audit == ([] if modern(redis_server) else list(got.ids[0]))


async def test_wait_for_all_groups_defers_until_every_group_acknowledged(
    redis8_server: Any,
) -> None:
    harness = StreamHarness(redis8_server)
    registry = waiting_registry()
    async with harness.consumed(1) as got:
        client = redis8_server.client()
        client.xgroup_create(got.target, "audit", id="0")
        (entry_id,) = got.ids[0]

        deferred = await msgdel.delete(got.messages[0], registry=registry)

        assert (deferred.outcome, deferred.removed) == (Outcome.DEFERRED, 0)
        assert entry_ids(client, got.target) == [entry_id]
        assert pending_ids(client, got.target) == []  # acknowledged all the same

        client.xreadgroup("audit", "a1", {got.target: ">"})
        client.xack(got.target, "audit", entry_id)
        deleted = await msgdel.delete(got.messages[0], registry=registry)

    assert (deleted.outcome, deleted.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, got.target) == []


async def test_wait_for_all_groups_is_refused_on_redis_7_and_deletes_nothing(
    redis7_server: Any,
) -> None:
    harness = StreamHarness(redis7_server)
    async with harness.consumed(1) as got:
        with pytest.raises(UnsupportedDeletion, match=r"Redis >= 8\.2"):
            await msgdel.delete(got.messages[0], registry=waiting_registry())
    assert await harness.stored(got.target) == list(got.ids[0])  # and still pending


async def test_list_messages_were_popped_on_read(redis_server: Any) -> None:
    harness = ListHarness(redis_server)
    async with harness.consumed(1) as got:
        result = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert (result.semantics, result.outcome) == (Semantics.NOT_STORED, Outcome.ALREADY_GONE)
    assert redis_server.client().llen(got.target) == 0


async def test_pubsub_messages_were_never_stored(redis_server: Any) -> None:
    harness = ChannelHarness(redis_server)
    async with harness.consumed(1) as got:
        result = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert (result.semantics, result.outcome) == (Semantics.NOT_STORED, Outcome.NOTHING_STORED)


async def test_a_stream_message_without_ids_fails_alone_and_its_neighbours_are_deleted(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    async with harness.consumed(3) as got:
        got.messages[1].raw_message["message_ids"] = []
        outcomes = await msgdel.delete_many(
            got.messages, registry=harness.registry, return_exceptions=True
        )
    first, bad, last = outcomes
    assert isinstance(bad, NotDeletable)
    assert "no entry ids" in str(bad)
    assert [getattr(o, "outcome", o) for o in (first, last)] == [Outcome.DELETED] * 2
    assert entry_ids(redis_server.client(), got.target) == list(got.ids[1])


async def test_a_message_acknowledged_before_the_delete_is_still_deleted(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    async with harness.consumed(2) as got:
        client = redis_server.client()
        client.xack(got.target, GROUP, *got.ids[0])

        result = await msgdel.delete(got.messages[0], registry=harness.registry)

    assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, got.target) == list(got.ids[1])


async def test_messages_faststream_acknowledged_are_deleted_in_one_command(
    redis_server: Any,
) -> None:
    """What the middleware with a batcher meets: FastStream acked before the batch goes out."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(3) as got:
        client = redis_server.client()
        for message in got.messages[:2]:
            await message.ack()  # FastStream's own XACK after the handler
        before = calls(client, "xdelex", "xackdel", "exec")

        results = await msgdel.delete_many(got.messages, registry=harness.registry)

        sent = {c: n - before[c] for c, n in calls(client, *before).items()}
    assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 3
    assert await harness.stored(got.target) == []
    if modern(redis_server):  # XDELEX for the acked two, XACKDEL for the third
        assert sent == {"xdelex": 1, "xackdel": 1, "exec": 0}
    else:  # one MULTI, which XACKs all three again: FastStream 0.6 marks a message
        # acknowledged without an XACK when it has no client to send one with
        assert sent == {"xdelex": 0, "xackdel": 0, "exec": 1}


async def test_a_deleted_group_message_counts_as_acknowledged_for_faststream(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    async with harness.consumed(1) as got:
        client = redis_server.client()
        await msgdel.delete(got.messages[0], registry=harness.registry)
        before = calls(client, "xack")

        await got.messages[0].ack()  # what FastStream does after the handler

        assert calls(client, "xack") == before


async def test_a_message_whose_broker_was_closed_is_still_deleted_as_redis_py_reconnects(
    redis8_server: Any,
) -> None:
    harness = StreamHarness(redis8_server)
    async with harness.consumed(1) as got:
        pass  # leaving the block closes the broker and its connection pool

    result = await msgdel.delete(got.messages[0], registry=harness.registry)

    assert result.outcome is Outcome.DELETED
    assert await harness.stored(got.target) == []
