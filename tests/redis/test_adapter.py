"""The Redis adapter's own specs against the test bed's real Redis 7 and Redis 8.2, beside the
conformance kit (test_conformance.py): other consumer groups (kept until the last one is
done, or ignore_other_groups), messages
FastStream acknowledged, several streams and clients in one batch."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from faststream.redis.message import RedisStreamMessage

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, Semantics
from msgdel.adapters.redis import RedisStreamAdapter
from tests.redis.harness import (
    GROUP,
    ChannelHarness,
    ListHarness,
    PlainStreamHarness,
    StreamHarness,
    entry_ids,
    modern,
    pending_ids,
)


def _flat(ids: list[tuple[str, ...]]) -> list[str]:
    return [i for group in ids for i in group]


def group_message(message: Any, group: str) -> Any:
    """The same entry as another group's consumer would have it: a copy of ``message`` read
    in ``group`` (FastStream binds the group to the message it delivers)."""
    other = copy.copy(message)
    other.group = group
    other.committed = None
    return other


def calls(client: Any, *commands: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


async def test_delete_many_across_streams_keeps_input_order_in_one_round_trip(
    redis_server: Any,
) -> None:
    """One Redis client, two streams, pipelined in one round trip: Redis 7 runs the
    acknowledge-and-delete script once per stream; Redis 8.2 one XACKDEL per stream, each in
    the script that measures what it deleted."""
    left, right = StreamHarness(redis_server), StreamHarness(redis_server)
    async with left.consumed(2) as a, right.consumed(2) as b:
        for message in b.messages:  # one broker reading both streams binds one client
            message.consumer = a.messages[0].consumer
        client = redis_server.client()
        before = calls(client, "exec", "evalsha", "xackdel")
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
        assert sent == {"exec": 0, "evalsha": 2, "xackdel": 2}
    else:
        assert sent == {"exec": 0, "evalsha": 2, "xackdel": 0}


async def test_a_stream_redis_refuses_fails_alone_and_the_others_in_its_round_trip_are_deleted(
    redis_server: Any,
) -> None:
    """One client, two streams in one round trip; the second's key now holds a string, so
    Redis refuses its command (WRONGTYPE). Only its messages fail: the first stream's were
    deleted, and say so."""
    left, right = StreamHarness(redis_server), StreamHarness(redis_server)
    async with left.consumed(2) as a, right.consumed(2) as b:
        for message in b.messages:  # one broker reading both streams binds one client
            message.consumer = a.messages[0].consumer
        client = redis_server.client()
        client.delete(b.target)
        client.set(b.target, "not a stream any more")
        mixed = [a.messages[0], b.messages[0], a.messages[1], b.messages[1]]
        results = await msgdel.delete_many(mixed, registry=left.registry, return_exceptions=True)
        assert await left.stored(a.target) == []
        assert client.get(b.target) == b"not a stream any more"
        client.delete(b.target)
    assert [getattr(r, "outcome", None) for r in results[0::2]] == [Outcome.DELETED] * 2
    for failed in results[1::2]:
        assert isinstance(failed, DeletionFailed), failed
        assert failed.retryable is False
        assert "WRONGTYPE" in str(failed)
        assert "other streams of the call are unaffected" in str(failed)


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


async def test_by_default_an_entry_stays_until_the_last_group_is_done_with_it(
    redis_server: Any,
) -> None:
    """Three groups read one stream in turn: billing (the harness's group) and shipping
    delete and are DEFERRED, the entry stays; audit, the last, deletes it."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(2) as got:
        client = redis_server.client()
        for group in ("shipping", "audit"):
            client.xgroup_create(got.target, group, id="0")
        first = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert (first.outcome, first.removed) == (Outcome.DEFERRED, 0)
        assert entry_ids(client, got.target) == _flat(got.ids)  # shipping, audit: unread
        assert pending_ids(client, got.target) == list(got.ids[1])  # billing acknowledged it

        client.xreadgroup("shipping", "s1", {got.target: ">"})
        shipping = await msgdel.delete(
            group_message(got.messages[0], "shipping"), registry=harness.registry
        )
        assert shipping.outcome is Outcome.DEFERRED  # audit has not even read it
        assert entry_ids(client, got.target) == _flat(got.ids)

        client.xreadgroup("audit", "a1", {got.target: ">"})
        last = await msgdel.delete(
            group_message(got.messages[0], "audit"), registry=harness.registry
        )
    assert (last.outcome, last.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, got.target) == list(got.ids[1])  # the neighbour stays
    for group in ("shipping", "audit"):
        assert pending_ids(client, got.target, group) == list(got.ids[1])


async def test_a_group_that_has_the_entry_pending_keeps_it(redis_server: Any) -> None:
    harness = StreamHarness(redis_server)
    async with harness.consumed(1) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "audit", id="0")
        client.xreadgroup("audit", "a1", {got.target: ">"})  # read, not acknowledged
        kept = await msgdel.delete(got.messages[0], registry=harness.registry)
        client.xack(got.target, "audit", *got.ids[0])
        again = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert kept.outcome is Outcome.DEFERRED
    assert (again.outcome, again.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, got.target) == []


async def test_an_entry_read_without_a_group_stays_while_a_group_needs_it(
    redis_server: Any,
) -> None:
    harness = PlainStreamHarness(redis_server)
    async with harness.consumed(1) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "billing", id="0")
        result = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert result.outcome is Outcome.DEFERRED
    assert entry_ids(client, got.target) == list(got.ids[0])


async def test_ignore_other_groups_deletes_at_once_and_leaves_no_dangling_reference(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, RedisStreamAdapter(ignore_other_groups=True))
    async with harness.consumed(1) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "audit", id="0")
        client.xreadgroup("audit", "a1", {got.target: ">"})  # audit has it pending, unacked
        result = await msgdel.delete(got.messages[0], registry=registry)
    assert result.outcome is Outcome.DELETED
    assert await harness.stored(got.target) == []  # billing's PEL is checked there too
    # Redis 8.2's DELREF also drops the other group's reference; Redis 7 cannot.
    audit = pending_ids(client, got.target, "audit")
    assert audit == ([] if modern(redis_server) else list(got.ids[0]))


def test_the_old_wait_for_all_groups_option_still_works_and_says_what_replaces_it() -> None:
    with pytest.warns(DeprecationWarning, match="ignore_other_groups=True"):
        assert RedisStreamAdapter(wait_for_all_groups=False).ignore_other_groups is True
    with pytest.warns(DeprecationWarning, match="default now"):
        assert RedisStreamAdapter(wait_for_all_groups=True).ignore_other_groups is False


async def test_an_entry_trimmed_while_pending_is_already_gone_and_its_neighbours_deleted(
    redis_server: Any,
) -> None:
    """`XADD … MAXLEN` or `XTRIM` removes entries a consumer still has pending; Redis 8.2's
    XACKDEL answers "deleted" for them all the same. msgdel reports them ALREADY_GONE."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(3) as got:
        client = redis_server.client()
        client.xtrim(got.target, maxlen=2, approximate=False)  # the oldest goes, still pending
        results = await msgdel.delete_many(got.messages, registry=harness.registry)
        assert [(r.outcome, r.removed) for r in results] == [
            (Outcome.ALREADY_GONE, 0), (Outcome.DELETED, 1), (Outcome.DELETED, 1),
        ]  # fmt: skip
        assert await harness.stored(got.target) == []
        assert pending_ids(client, got.target) == []


async def test_an_entry_deleted_elsewhere_while_pending_is_never_reported_deleted(
    redis_server: Any,
) -> None:
    """A plain `XDEL` of a pending entry in the middle of a batch: that one is ALREADY_GONE.
    On Redis 8.2, which of the batch's entries this call removed cannot be told then (the
    stream lost fewer than XACKDEL claims), so none is claimed: all are ALREADY_GONE."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(3) as got:
        client = redis_server.client()
        middle = got.ids[1][0]
        client.xdel(got.target, middle)
        results = await msgdel.delete_many(got.messages, registry=harness.registry)
        assert results[1].outcome is Outcome.ALREADY_GONE
        assert {r.outcome for r in results} <= {Outcome.DELETED, Outcome.ALREADY_GONE}
        assert sum(r.removed for r in results) <= 2
        if not modern(redis_server):  # the script deletes one entry at a time: it can tell
            assert [r.outcome for r in results] == [
                Outcome.DELETED, Outcome.ALREADY_GONE, Outcome.DELETED,
            ]  # fmt: skip
        assert await harness.stored(got.target) == []
        assert pending_ids(client, got.target) == []

    one = StreamHarness(redis_server)
    async with one.consumed(1) as single:
        client.xdel(single.target, single.ids[0][0])
        (result,) = await msgdel.delete_many(single.messages, registry=one.registry)
        assert (result.outcome, result.removed) == (Outcome.ALREADY_GONE, 0)
        assert pending_ids(client, single.target) == []


async def test_a_server_that_lost_its_scripts_runs_them_again_and_nothing_else_twice(
    redis_server: Any,
) -> None:
    """`SCRIPT FLUSH` (or a failover to a server that never loaded them) between two calls:
    the refused script calls are sent again with the script, and the commands beside them in
    the same round trip (XACK and XDELEX of messages FastStream acknowledged) are not: each
    message is DELETED once, none ALREADY_GONE."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(4) as got:
        first, acked, pending = got.messages[0], got.messages[1:3], got.messages[3]
        await msgdel.delete(first, registry=harness.registry)  # this client loaded them
        for message in acked:
            await message.ack()
        client = redis_server.client()
        client.script_flush()
        before = client.info("commandstats")["cmdstat_script|load"]["calls"]
        results = await msgdel.delete_many([*acked, pending], registry=harness.registry)
        assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 3
        assert await harness.stored(got.target) == []
        assert client.info("commandstats")["cmdstat_script|load"]["calls"] == before + 1


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
        before = calls(client, "xack", "xdelex", "xackdel", "evalsha")

        results = await msgdel.delete_many(got.messages, registry=harness.registry)

        sent = {c: n - before[c] for c, n in calls(client, *before).items()}
    assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 3
    assert await harness.stored(got.target) == []
    # The acked two are XACKed again (FastStream 0.6 marks a message acknowledged without an
    # XACK when it has no client to send one with), all in one round trip.
    if modern(redis_server):  # XACK and XDELEX ACKED for the acked two, XACKDEL (in its
        # script) for the third
        assert sent == {"xack": 1, "xdelex": 1, "xackdel": 1, "evalsha": 1}
    else:  # the script, once per bucket (acked, not acked), XACKs each of the three
        assert sent == {"xack": 3, "xdelex": 0, "xackdel": 0, "evalsha": 2}


async def test_concurrent_deletions_on_a_new_client_ask_for_xackdel_once(
    redis_server: Any,
) -> None:
    """A Batcher's flushes can run at once on a client msgdel has not used yet: they share
    one `COMMAND INFO XACKDEL`, instead of each asking on a connection of its own."""
    harness = StreamHarness(redis_server)
    async with harness.consumed(4) as got:
        client = redis_server.client()
        before = calls(client, "command|info")
        results = await asyncio.gather(
            *(msgdel.delete(m, registry=harness.registry) for m in got.messages)
        )
        sent = calls(client, "command|info")["command|info"] - before["command|info"]
    assert [r.outcome for r in results] == [Outcome.DELETED] * 4
    assert await harness.stored(got.target) == []
    assert sent == 1


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


async def test_a_password_rotated_under_a_running_app_fails_without_retry_and_deletes_nothing(
    own_redis: Any,
) -> None:
    """A reconnect with the old credentials is refused: retrying cannot succeed, and the
    error says to fix the credentials, with no password in it."""
    import redis

    harness = StreamHarness(own_redis)
    secret = "n3w-p@ss:w%rd"
    async with harness.consumed(2) as got:
        admin = own_redis.client()
        admin.config_set("requirepass", secret)
        admin.client_kill_filter(_type="normal", skipme=False)  # every connection reconnects
        try:
            outcomes = await msgdel.delete_many(
                got.messages, registry=harness.registry, return_exceptions=True
            )
        finally:
            admin = redis.Redis(host="127.0.0.1", port=own_redis.port, password=secret)
            stored = [i.decode() for i, _ in admin.xrange(got.target)]
            admin.config_set("requirepass", "")
    assert all(isinstance(o, DeletionFailed) and not o.retryable for o in outcomes)
    assert "credentials" in str(outcomes[0])
    assert secret not in str(outcomes[0])
    assert stored == _flat(got.ids)
