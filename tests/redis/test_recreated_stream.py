"""A stream deleted and re-created under the same key, where a producer set entry ids
explicitly, can hold another message under a consumed message's id.
``RedisStreamAdapter(match_fields=True)`` deletes an entry only while it still holds the fields
the message was consumed with; the default cannot tell. Against the test bed's Redis 7 and 8.2,
checked at the broker; the conformance kit runs against the option too."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from faststream.redis.message import RedisBatchStreamMessage, RedisStreamMessage

import msgdel
from msgdel import NotDeletable, Outcome
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.testing.conformance import Consumed, Harness
from tests.redis.harness import (
    GROUP,
    BatchStreamHarness,
    PlainStreamHarness,
    StreamHarness,
    entry_ids,
    pending_ids,
)
from tests.redis.test_conformance import RedisConformance


def matching(harness: StreamHarness) -> StreamHarness:
    """``harness`` with ``RedisStreamAdapter(match_fields=True)`` in its registry."""
    adapter = RedisStreamAdapter(match_fields=True)
    harness.registry.register(RedisStreamMessage, adapter, replace=True)
    harness.registry.register(RedisBatchStreamMessage, adapter, replace=True)
    return harness


class ExplicitIds(StreamHarness):
    """Stream entries whose ids the producer set: ``1-1``, ``1-2``, ..."""

    def prepare(self, name: str, count: int) -> None:
        client = self.client()
        client.xgroup_create(name, GROUP, id="0", mkstream=True)
        for n in range(count):
            client.xadd(name, {"__data__": f"m{n}"}, id=f"1-{n + 1}")


def recreate(client: Any, stream: str, entries: dict[str, str]) -> None:
    """Delete ``stream`` and create it again holding ``entries`` (id: body), with the group
    created again and another consumer of it having read every new entry (pending)."""
    client.delete(stream)
    for entry, body in entries.items():
        client.xadd(stream, {"__data__": body}, id=entry)
    client.xgroup_create(stream, GROUP, id="0")
    client.xreadgroup(GROUP, "newcomer", {stream: ">"})


def evalsha_calls(client: Any) -> int:
    """How many script calls the server has run (commands a script runs count apart)."""
    return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def bodies(client: Any, stream: str) -> dict[str, bytes]:
    return {i.decode(): fields[b"__data__"] for i, fields in client.xrange(stream)}


async def test_without_match_fields_a_reused_id_in_a_re_created_stream_loses_the_new_entry(
    redis_server: Any,
) -> None:
    """The limitation the option exists for: the default deletes by id, and reports DELETED
    for an entry that is another message."""
    harness = ExplicitIds(redis_server)
    async with harness.consumed(1) as got:
        pass
    client = redis_server.client()
    recreate(client, got.target, {"1-1": "another message"})

    result = await msgdel.delete(got.messages[0], registry=harness.registry)

    assert result.outcome is Outcome.DELETED
    assert bodies(client, got.target) == {}


async def test_with_match_fields_another_message_under_a_reused_id_is_left_alone(
    redis_server: Any,
) -> None:
    """``1-1`` now holds another message: ALREADY_GONE, the entry stays, and stays pending in
    the new group (nothing acknowledged it). ``1-2`` holds the same fields again: nothing
    tells it from the consumed one, so it is deleted; ``1-3`` is not stored at all."""
    harness = matching(ExplicitIds(redis_server))
    async with harness.consumed(3) as got:
        pass
    client = redis_server.client()
    recreate(client, got.target, {"1-1": "another message", "1-2": "m1"})

    results = await msgdel.delete_many(got.messages, registry=harness.registry)

    assert [(r.ids, r.outcome, r.removed) for r in results] == [
        (("1-1",), Outcome.ALREADY_GONE, 0),
        (("1-2",), Outcome.DELETED, 1),
        (("1-3",), Outcome.ALREADY_GONE, 0),
    ]
    assert bodies(client, got.target) == {"1-1": b"another message"}
    assert pending_ids(client, got.target) == ["1-1"]


@pytest.mark.parametrize("match_fields", [False, True], ids=["default", "match_fields"])
async def test_a_message_of_a_deleted_stream_is_already_gone(
    redis_server: Any, match_fields: bool
) -> None:
    """Redis 7's script read the groups of the stream first, and failed on a missing key."""
    harness = StreamHarness(redis_server)
    if match_fields:
        matching(harness)
    async with harness.consumed(2) as got:
        pass
    client = redis_server.client()
    client.delete(got.target)

    results = await msgdel.delete_many(got.messages, registry=harness.registry)

    assert [(r.outcome, r.removed) for r in results] == [(Outcome.ALREADY_GONE, 0)] * 2
    assert not client.exists(got.target)


async def test_with_match_fields_faststream_sends_no_xack_for_another_message(
    redis_server: Any,
) -> None:
    """The ALREADY_GONE message counts as settled, so FastStream's own XACK after the handler
    does not acknowledge the new group's entry under the same id."""
    harness = matching(ExplicitIds(redis_server))
    async with harness.consumed(1) as got:
        pass
    client = redis_server.client()
    recreate(client, got.target, {"1-1": "another message"})

    await msgdel.delete(got.messages[0], registry=harness.registry)
    await got.messages[0].ack()

    assert pending_ids(client, got.target) == ["1-1"]


async def test_with_match_fields_consumed_entries_are_deleted_in_one_round_trip(
    redis_server: Any,
) -> None:
    """The usual case costs what the default costs in round trips: one script call per
    stream and group, pipelined; acknowledged entries too; the neighbours stay."""
    harness = matching(StreamHarness(redis_server))
    async with harness.consumed(4) as got:
        client = redis_server.client()
        client.xack(got.target, GROUP, *got.ids[0])  # acknowledged at the broker already
        await got.messages[1].ack()  # and by FastStream
        before = evalsha_calls(client)

        results = await msgdel.delete_many(got.messages[:3], registry=harness.registry)

        sent = evalsha_calls(client) - before
    assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 3
    assert sent == 2  # one script call per bucket: not yet acknowledged, acknowledged
    assert await harness.stored(got.target) == list(got.ids[3])


async def test_with_match_fields_an_entry_another_group_needs_is_kept(redis_server: Any) -> None:
    harness = matching(StreamHarness(redis_server))
    async with harness.consumed(1) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "audit", id="0")  # audit has not read it
        kept = await msgdel.delete(got.messages[0], registry=harness.registry)
        client.xreadgroup("audit", "a1", {got.target: ">"})
        client.xack(got.target, "audit", *got.ids[0])
        again = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert (kept.outcome, kept.removed) == (Outcome.DEFERRED, 0)
    assert (again.outcome, again.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, got.target) == []
    assert pending_ids(client, got.target) == []


async def test_with_match_fields_and_ignore_other_groups_an_entry_is_deleted_at_once(
    redis_server: Any,
) -> None:
    harness = StreamHarness(redis_server)
    adapter = RedisStreamAdapter(match_fields=True, ignore_other_groups=True)
    harness.registry.register(RedisStreamMessage, adapter, replace=True)
    async with harness.consumed(2) as got:
        client = redis_server.client()
        client.xgroup_create(got.target, "audit", id="0")
        result = await msgdel.delete(got.messages[0], registry=harness.registry)
    assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
    assert await harness.stored(got.target) == list(got.ids[1])


async def test_with_match_fields_a_batch_message_keeps_what_another_message_reused(
    redis_server: Any,
) -> None:
    """A batch message's entries are compared one by one; the message is DELETED if any of
    its entries was, and the reused id keeps its new message."""
    harness = matching(BatchStreamHarness(redis_server))
    async with harness.consumed(1) as got:
        pass
    client = redis_server.client()
    first, second, third = got.ids[0]
    recreate(client, got.target, {first: "another message", second: "m1"})

    result = await msgdel.delete(got.messages[0], registry=harness.registry)

    assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
    assert bodies(client, got.target) == {first: b"another message"}
    assert third not in entry_ids(client, got.target)


async def test_with_match_fields_a_message_without_its_fields_fails_alone(
    redis_server: Any,
) -> None:
    harness = matching(StreamHarness(redis_server))
    async with harness.consumed(3) as got:
        bare = copy.copy(got.messages[1])
        bare.raw_message = {**bare.raw_message, "data": {}}
        outcomes = await msgdel.delete_many(
            [got.messages[0], bare, got.messages[2]],
            registry=harness.registry,
            return_exceptions=True,
        )
    first, refused, last = outcomes
    assert isinstance(refused, NotDeletable)
    assert "match_fields" in str(refused)
    assert [getattr(o, "outcome", o) for o in (first, last)] == [Outcome.DELETED] * 2
    assert await harness.stored(got.target) == list(got.ids[1])


def test_match_fields_is_true_or_false_and_shows_in_the_repr() -> None:
    with pytest.raises(TypeError, match="match_fields must be True or False"):
        RedisStreamAdapter(match_fields="yes")  # type: ignore[arg-type]
    assert "match_fields=True" in repr(RedisStreamAdapter(match_fields=True))
    assert "match_fields" not in repr(RedisStreamAdapter())


class CountingScripts(StreamHarness):
    """A harness whose deletion requests are script calls: the commands a script runs
    (XACK, XDELEX) show in ``INFO commandstats`` too, but are no round trips."""

    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        async with super().consumed(count) as got:
            self._scripts = evalsha_calls(self.client())
            yield got

    async def requests(self, target: Any) -> int:
        return evalsha_calls(self.client()) - self._scripts


class MatchingStream(CountingScripts):
    pass


class MatchingPlainStream(CountingScripts, PlainStreamHarness):
    pass


class MatchingBatchStream(CountingScripts, BatchStreamHarness):
    pass


class MatchingConformance(RedisConformance):
    """The whole kit, against ``RedisStreamAdapter(match_fields=True)``."""

    @pytest.fixture
    def harness(self, redis_server: Any) -> Harness:
        return matching(self.kind(redis_server))  # type: ignore[arg-type]


class TestMatchingStreamMessagesReadInAGroup(MatchingConformance):
    kind = MatchingStream


class TestMatchingStreamMessagesReadWithoutAGroup(MatchingConformance):
    kind = MatchingPlainStream


class TestMatchingBatchStreamMessages(MatchingConformance):
    kind = MatchingBatchStream
