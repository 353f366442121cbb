"""Deleting Redis stream entries by address (``msgdel.delete_at`` with ``RedisEntry``) against
the test bed's real Redis 7 and Redis 8.2, checked at the broker: the stream's entries
(``XRANGE``/``XLEN``) and every group's pending list (``XPENDING``) afterwards.

An address is deleted with the code that deletes a consumed message, so its results read the
same; every consumer group counts as another one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio

import msgdel
from msgdel import DeleteResult, DeletionFailed, NotDeletable, Outcome, Semantics
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.address import RedisEntry
from tests.redis.harness import entry_ids, modern, pending_ids, unique
from tests.testbed.process import free_port

BILLING, SHIPPING = "billing", "shipping"


def stream_of(
    client: Any, count: int, *, groups: Sequence[str] = (), read: Sequence[str] = ()
) -> tuple[str, list[str]]:
    """A fresh stream of ``count`` entries with ``groups`` created at its start; each group in
    ``read`` has read every entry (so has them all pending). Returns the key and the ids."""
    name = unique("addr")
    ids = [client.xadd(name, {"n": str(i)}).decode() for i in range(count)]
    for group in groups:
        client.xgroup_create(name, group, id="0")
    for group in read:
        client.xreadgroup(group, "c1", {name: ">"})
    return name, ids


def calls(client: Any, *commands: str) -> dict[str, int]:
    stats = client.info("commandstats")
    return {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in commands}


DELETING = ("xackdel", "xdelex", "evalsha", "exec")
"""The commands a deleting round trip sends: XACKDEL/XDELEX on 8.2, the script or MULTI on 7
(``INFO commandstats`` also counts the commands a script or MULTI runs inside)."""


@pytest.fixture
async def aio(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio redis-py client of the test bed's server, as a caller would pass it."""
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_an_entry_is_deleted_through_a_url_and_acknowledged_in_its_group(
    redis_server: Any,
) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 3, groups=[BILLING], read=[BILLING])

    (result,) = await msgdel.delete_at(
        redis_server.url, [RedisEntry(stream, ids[1], group=BILLING)]
    )

    assert result == DeleteResult("redis", stream, (ids[1],), Semantics.EXACT, Outcome.DELETED, 1)
    assert entry_ids(client, stream) == [ids[0], ids[2]]  # the neighbours stay
    assert pending_ids(client, stream, BILLING) == [ids[0], ids[2]]  # no dangling reference
    assert client.xlen(stream) == 2


async def test_entries_are_deleted_on_a_client_the_caller_passes_in_input_order(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    left, left_ids = stream_of(client, 2)
    right, right_ids = stream_of(client, 2)
    addresses = [RedisEntry(right, right_ids[0]), RedisEntry(left, left_ids[1])]

    results = await msgdel.delete_at(aio, addresses)

    assert [(r.target, r.ids, r.outcome, r.removed) for r in results] == [
        (right, (right_ids[0],), Outcome.DELETED, 1),
        (left, (left_ids[1],), Outcome.DELETED, 1),
    ]
    assert entry_ids(client, left) == [left_ids[0]]
    assert entry_ids(client, right) == [right_ids[1]]


async def test_a_missing_id_is_already_gone_and_changes_nothing(redis_server: Any) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING], read=[BILLING])

    results = await msgdel.delete_at(
        redis_server.url, [RedisEntry(stream, "1-1", group=BILLING), RedisEntry(stream, "2-2")]
    )

    assert [(r.outcome, r.removed) for r in results] == [(Outcome.ALREADY_GONE, 0)] * 2
    assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == ids


async def test_deleting_an_entry_again_reports_already_gone(redis_server: Any) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 1, groups=[BILLING], read=[BILLING])
    address = RedisEntry(stream, ids[0], group=BILLING)

    first = await msgdel.delete_at(redis_server.url, [address])
    again = await msgdel.delete_at(redis_server.url, [address])

    assert [first[0].outcome, again[0].outcome] == [Outcome.DELETED, Outcome.ALREADY_GONE]
    assert client.xlen(stream) == 0


async def test_an_unknown_stream_or_a_key_of_another_type_is_not_deletable_and_the_rest_is_deleted(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    """The check runs before the deleting round trip: the bad keys' addresses never reach
    a deleting command, the good ones in the same call are deleted, one command per stream."""
    client = redis_server.client()
    good, good_ids = stream_of(client, 2)
    other, other_ids = stream_of(client, 1)
    absent, text = unique("absent"), unique("text")
    client.set(text, "not a stream")
    addresses = [
        RedisEntry(good, good_ids[0]),
        RedisEntry(absent, "1-0"),
        RedisEntry(text, "1-0", group=BILLING),
        RedisEntry(other, other_ids[0]),
    ]
    await msgdel.delete_at(aio, [RedisEntry(good, "1-1")])  # the server version is known now
    before = calls(client, *DELETING)

    outcomes = await msgdel.delete_at(aio, addresses, return_exceptions=True)

    sent = {c: n - before[c] for c, n in calls(client, *DELETING).items() if n > before[c]}
    deleted, unknown, wrong_type, also_deleted = outcomes
    assert isinstance(deleted, DeleteResult)
    assert deleted.outcome is Outcome.DELETED
    assert isinstance(also_deleted, DeleteResult)
    assert also_deleted.outcome is Outcome.DELETED
    assert isinstance(unknown, NotDeletable)
    assert repr(absent) in str(unknown)
    assert "no stream" in str(unknown)
    assert isinstance(wrong_type, NotDeletable)
    assert repr(text) in str(wrong_type)
    assert "not a stream" in str(wrong_type)
    assert sent == ({"xdelex": 2} if modern(redis_server) else {"evalsha": 2})
    assert client.get(text) == b"not a stream"
    assert not client.exists(absent)
    assert entry_ids(client, good) == [good_ids[1]]
    assert entry_ids(client, other) == []


async def test_a_group_the_stream_does_not_have_is_not_deletable_and_its_entry_stays(
    redis_server: Any,
) -> None:
    """Redis would answer XACKDEL for a missing group as for an entry it has not pending, and
    then delete the entry: the group is checked first, and the entry is left alone."""
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING], read=[BILLING])
    addresses = [RedisEntry(stream, ids[0], group="biling"), RedisEntry(stream, ids[1])]

    outcomes = await msgdel.delete_at(redis_server.url, addresses, return_exceptions=True)

    typo, ungrouped = outcomes
    assert isinstance(typo, NotDeletable)
    assert all(name in str(typo) for name in (repr("biling"), repr(stream), repr(BILLING)))
    assert isinstance(ungrouped, DeleteResult)
    assert ungrouped.outcome is Outcome.DEFERRED
    assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == ids


async def test_by_default_an_entry_another_group_has_not_read_is_acknowledged_and_kept(
    redis_server: Any,
) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING, SHIPPING], read=[BILLING])

    (result,) = await msgdel.delete_at(
        redis_server.url, [RedisEntry(stream, ids[0], group=BILLING)]
    )

    assert (result.outcome, result.removed) == (Outcome.DEFERRED, 0)
    assert entry_ids(client, stream) == ids
    assert pending_ids(client, stream, BILLING) == [ids[1]]  # acknowledged in billing
    assert pending_ids(client, stream, SHIPPING) == []  # shipping has not read it yet


async def test_by_default_an_entry_without_a_group_is_kept_while_any_group_has_it_pending(
    redis_server: Any,
) -> None:
    """An address has no group of its own: every group counts as another one."""
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING], read=[BILLING])

    (result,) = await msgdel.delete_at(redis_server.url, [RedisEntry(stream, ids[0])])

    assert (result.outcome, result.removed) == (Outcome.DEFERRED, 0)
    assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == ids


async def test_the_last_group_to_finish_with_an_entry_deletes_it(redis_server: Any) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING, SHIPPING], read=[BILLING, SHIPPING])

    first = await msgdel.delete_at(redis_server.url, [RedisEntry(stream, ids[0], group=BILLING)])
    last = await msgdel.delete_at(redis_server.url, [RedisEntry(stream, ids[0], group=SHIPPING)])

    assert [first[0].outcome, last[0].outcome] == [Outcome.DEFERRED, Outcome.DELETED]
    assert entry_ids(client, stream) == [ids[1]]
    for group in (BILLING, SHIPPING):
        assert pending_ids(client, stream, group) == [ids[1]]


@pytest.mark.parametrize("group", [BILLING, None], ids=["in-a-group", "without-a-group"])
async def test_ignore_other_groups_deletes_what_another_group_still_needs(
    redis_server: Any, group: str | None
) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING, SHIPPING], read=[BILLING, SHIPPING])
    adapter = RedisStreamAdapter(ignore_other_groups=True)

    (result,) = await msgdel.delete_at(
        redis_server.url, [RedisEntry(stream, ids[0], group=group)], adapter=adapter
    )

    assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
    assert entry_ids(client, stream) == [ids[1]]
    # Redis 8.2's DELREF drops every group's reference; Redis 7's XACK reaches the named one.
    for name in (BILLING, SHIPPING):
        dropped = modern(redis_server) or name == group
        assert pending_ids(client, stream, name) == (ids[1:] if dropped else ids)


async def test_a_dry_run_sends_nothing_and_leaves_the_stream_unchanged(redis_server: Any) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING], read=[BILLING])
    before = calls(client, *DELETING, "type", "xinfo")
    addresses = [RedisEntry(stream, ids[0], group=BILLING), RedisEntry(unique("absent"), "1-0")]

    results = await msgdel.delete_at(redis_server.url, addresses, dry_run=True)

    assert [r.outcome for r in results] == [Outcome.SKIPPED] * 2
    assert calls(client, *before) == before
    assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == ids


async def test_a_client_that_decodes_replies_deletes_and_checks_alike(redis_server: Any) -> None:
    client = redis_server.client()
    stream, ids = stream_of(client, 2, groups=[BILLING], read=[BILLING])
    text = unique("text")
    client.set(text, "x")
    decoding = redis.asyncio.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        outcomes = await msgdel.delete_at(
            decoding,
            [
                RedisEntry(stream, ids[0], group=BILLING),
                RedisEntry(stream, ids[1], group="nope"),
                RedisEntry(text, "1-0"),
            ],
            return_exceptions=True,
        )
    finally:
        await decoding.aclose()

    deleted, no_group, wrong_type = outcomes
    assert isinstance(deleted, DeleteResult)
    assert deleted.outcome is Outcome.DELETED
    assert isinstance(no_group, NotDeletable)
    assert repr("nope") in str(no_group)
    assert isinstance(wrong_type, NotDeletable)
    assert "not a stream" in str(wrong_type)
    assert entry_ids(client, stream) == [ids[1]]


async def test_an_unreachable_url_fails_retryably_and_never_shows_its_password() -> None:
    secret = "s3cr3t-p@ss"
    url = f"redis://app:{secret}@127.0.0.1:{free_port()}/0"
    addresses = [RedisEntry("orders", "1-0"), RedisEntry("orders", "2-0", group=BILLING)]

    outcomes = await msgdel.delete_at(url, addresses, return_exceptions=True)

    assert all(isinstance(o, DeletionFailed) and o.retryable for o in outcomes)
    for outcome in outcomes:
        assert secret not in str(outcome)
        assert secret not in repr(outcome)
    with pytest.raises(DeletionFailed) as raised:
        await msgdel.delete_at(url, addresses)
    assert raised.value.retryable
    assert secret not in str(raised.value)


async def test_a_server_that_went_down_fails_retryably_and_a_retry_deletes(
    own_redis: Any,
) -> None:
    client = own_redis.client()
    stream, ids = stream_of(client, 1, groups=[BILLING], read=[BILLING])
    address = RedisEntry(stream, ids[0], group=BILLING)
    aio = redis.asyncio.Redis.from_url(own_redis.url)
    try:
        own_redis.stop()
        try:
            (failed,) = await msgdel.delete_at(aio, [address], return_exceptions=True)
        finally:
            own_redis.start()
        (retried,) = await msgdel.delete_at(aio, [address])
    finally:
        await aio.aclose()

    assert isinstance(failed, DeletionFailed)
    assert failed.retryable
    assert retried.outcome is Outcome.DELETED
    assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == []


async def test_a_wrong_password_fails_without_retry_and_deletes_nothing(own_redis: Any) -> None:
    secret, wrong = "r1ght-pass", "wr0ng-pass"
    client = own_redis.client()
    stream, ids = stream_of(client, 1)
    client.config_set("requirepass", secret)
    try:
        (failed,) = await msgdel.delete_at(
            f"redis://:{wrong}@127.0.0.1:{own_redis.port}",
            [RedisEntry(stream, ids[0])],
            return_exceptions=True,
        )
    finally:
        client = redis.Redis(host="127.0.0.1", port=own_redis.port, password=secret)
        stored = entry_ids(client, stream)
        client.config_set("requirepass", "")

    assert isinstance(failed, DeletionFailed)
    assert not failed.retryable
    assert wrong not in str(failed)
    assert secret not in str(failed)
    assert stored == ids


async def test_more_pending_addresses_than_one_scripted_xackdel_takes_are_all_deleted(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    """The script around XACKDEL sends at most 4,000 ids per XACKDEL (Lua's `unpack()` takes
    a few thousand values): 4,500 pending entries of one group are deleted and counted."""
    client = redis_server.client()
    stream, ids = stream_of(client, 4_500, groups=[BILLING], read=[BILLING])
    results = await msgdel.delete_at(aio, [RedisEntry(stream, i, group=BILLING) for i in ids])
    assert [(r.outcome, r.removed) for r in results] == [(Outcome.DELETED, 1)] * 4_500
    assert entry_ids(client, stream) == []
    assert pending_ids(client, stream, BILLING) == []


async def test_many_addresses_are_checked_once_per_stream_and_deleted_once_per_stream_and_group(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    """Three streams, 150 addresses, half in a group: one TYPE per stream and one XINFO GROUPS
    per stream with a named group, then one deleting command per stream and group."""
    client = redis_server.client()
    streams = [stream_of(client, 50, groups=[BILLING], read=[BILLING]) for _ in range(3)]
    addresses = [
        RedisEntry(stream, entry, group=group)
        for stream, ids in streams
        for entry, group in zip(ids, [BILLING, None] * 25)
    ]
    await msgdel.delete_at(aio, [RedisEntry(streams[0][0], "1-1")])  # the version is known now
    before = calls(client, "type", "xinfo|groups", *DELETING)

    results = await msgdel.delete_at(aio, addresses)

    after = calls(client, *before)
    sent = {c: after[c] - before[c] for c in before if after[c] > before[c]}
    # Acknowledged in billing, the grouped entries go; billing has the others pending.
    assert [r.outcome for r in results[0::2]] == [Outcome.DELETED] * 75
    assert [r.outcome for r in results[1::2]] == [Outcome.DEFERRED] * 75
    if modern(redis_server):
        assert sent == {"type": 3, "xinfo|groups": 3, "evalsha": 3, "xackdel": 3, "xdelex": 3}
    else:  # one script call per stream and group, each reading XINFO GROUPS itself
        assert sent == {"type": 3, "xinfo|groups": 3 + 6, "evalsha": 6}
    for stream, ids in streams:
        assert entry_ids(client, stream) == pending_ids(client, stream, BILLING) == ids[1::2]


async def test_a_missing_entry_is_already_gone_even_where_a_group_has_not_read_that_far(
    redis8_server: Any,
) -> None:
    """Redis 8.2's XDELEX ACKED answers "still referenced" for an id the stream does not hold
    when a group has not read up to it; msgdel looks it up and says ALREADY_GONE."""
    client = redis8_server.client()
    try:
        client.delete("lagging")
        client.xgroup_create("lagging", "shipping", id="0", mkstream=True)
        client.xadd("lagging", {"n": "1"}, id="5-1")
        kept, missing, grouped = await msgdel.delete_at(
            redis8_server.url,
            [RedisEntry("lagging", "5-1"), RedisEntry("lagging", "9-9"),
             RedisEntry("lagging", "7-7", group="shipping")],
        )  # fmt: skip
        assert kept.outcome is Outcome.DEFERRED
        assert missing.outcome is Outcome.ALREADY_GONE
        assert grouped.outcome is Outcome.ALREADY_GONE
        assert client.xlen("lagging") == 1
    finally:
        client.delete("lagging")
        client.close()
