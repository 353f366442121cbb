"""The Redis dead-letter reaper (``msgdel.reaper.RedisReaper``) against the test bed's real
Redis 7 and Redis 8.2, checked at the broker: the stream's entries (``XRANGE``), the group's
pending list (``XPENDING``) and the dead-letter stream's contents afterwards.

Entries are made dead as Redis itself makes them: read by a consumer that never acknowledges
(``XREADGROUP``), redelivered (``XCLAIM``, which counts a delivery), left idle (``XCLAIM ...
IDLE`` sets how long)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from typer.testing import CliRunner

from msgdel import DeleteResult, DeletionReport, NotDeletable, Outcome, Registry, Semantics
from msgdel.reaper import Policy, RedisReaper, SweepReport
from msgdel.reaper import _redis as reaper_module
from tests.eventually import eventually
from tests.redis.harness import entry_ids, pending_ids, unique

GROUP, OTHER = "billing", "audit"


def dead_stream(
    client: Any,
    count: int,
    *,
    deliveries: int = 1,
    groups: Sequence[str] = (GROUP,),
    fields: dict[str, str] | None = None,
) -> tuple[str, list[str]]:
    """A fresh stream of ``count`` entries, each read by consumer ``c1`` of every group in
    ``groups`` and never acknowledged, delivered ``deliveries`` times in all (``XCLAIM``)."""
    name = unique("reap")
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(name, {**(fields or {}), "n": str(i)})
    ids = [i.decode() for i in pipe.execute()]
    for group in groups:
        client.xgroup_create(name, group, id="0")
        client.xreadgroup(group, "c1", {name: ">"})
        for _ in range(deliveries - 1):
            for first in range(0, count, 1000):
                client.xclaim(name, group, "c1", 0, ids[first : first + 1000])
    return name, ids


def set_idle(client: Any, stream: str, ids: Sequence[str], seconds: float) -> None:
    """Make ``ids`` look idle for ``seconds`` (``XCLAIM ... IDLE``; JUSTID counts no delivery)."""
    client.xclaim(stream, GROUP, "c1", 0, list(ids), idle=int(seconds * 1000), justid=True)


def dead_letters(client: Any, stream: str) -> list[dict[str, str]]:
    """The dead-letter stream's entries' fields, decoded, in order."""
    return [
        {k.decode(): v.decode(errors="replace") for k, v in fields.items()}
        for _, fields in client.xrange(stream)
    ]


def outcomes(report: SweepReport) -> dict[str, int]:
    return {o.value: n for o, n in report.outcomes.items()}


@pytest.fixture
async def aio(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_entries_delivered_too_often_are_acknowledged_and_deleted_and_the_rest_stay(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 5)
    client.xclaim(stream, GROUP, "c1", 0, ids[1:3])  # delivered twice
    client.xclaim(stream, GROUP, "c1", 0, ids[1:3])  # three times

    report = await RedisReaper(aio, stream=stream, group=GROUP,
                               policy=Policy(min_deliveries=3)).sweep()  # fmt: skip

    assert (report.scanned, report.dead, outcomes(report)) == (5, 2, {"deleted": 2})
    assert report.complete
    assert report.error is None
    assert sorted(report.results, key=lambda r: r.ids) == [
        DeleteResult("redis", stream, (i,), Semantics.EXACT, Outcome.DELETED, 1) for i in ids[1:3]
    ]
    assert entry_ids(client, stream) == [ids[0], ids[3], ids[4]]
    assert pending_ids(client, stream, GROUP) == [ids[0], ids[3], ids[4]]


async def test_entries_idle_too_long_are_reaped_and_recently_delivered_ones_stay(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 4)
    set_idle(client, stream, ids[:2], 120)  # their consumer died two minutes ago

    report = await RedisReaper(aio, stream=stream, group=GROUP,
                               policy=Policy(min_idle=60)).sweep()  # fmt: skip

    assert (report.dead, outcomes(report)) == (2, {"deleted": 2})
    assert entry_ids(client, stream) == ids[2:]
    assert pending_ids(client, stream, GROUP) == ids[2:]


async def test_either_criterion_makes_an_entry_dead(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 3)
    set_idle(client, stream, [ids[0]], 120)
    client.xclaim(stream, GROUP, "c1", 0, [ids[1]])  # delivered twice, idle 0

    policy = Policy(min_deliveries=2, min_idle=60)
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()

    assert report.dead == 2
    assert entry_ids(client, stream) == [ids[2]]


async def test_dead_entries_are_copied_to_the_dead_letter_stream_with_their_origin_then_deleted(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 3, deliveries=4, fields={"__data__": "body"})
    dlq = f"{stream}:dead"

    policy = Policy(min_deliveries=4, dead_letter=dlq)
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()

    assert (report.dead, report.dead_lettered, outcomes(report)) == (3, 3, {"deleted": 3})
    assert dead_letters(client, dlq) == [
        {
            "__data__": "body", "n": str(n),  # the entry's own fields first, in order
            "msgdel-origin-stream": stream, "msgdel-origin-id": ids[n],
            "msgdel-origin-group": GROUP, "msgdel-origin-consumer": "c1",
            "msgdel-deliveries": "4",
        }
        for n in range(3)
    ]  # fmt: skip
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream, GROUP) == []


def test_the_copy_scripts_extra_fields_are_the_ones_the_module_names() -> None:
    names = (reaper_module.ORIGIN_STREAM, reaper_module.ORIGIN_ID, reaper_module.ORIGIN_GROUP,
             reaper_module.ORIGIN_CONSUMER, reaper_module.DELIVERIES)  # fmt: skip
    assert all(f"'{name}'" in reaper_module._COPY_THEN_DELETE for name in names)


@pytest.mark.parametrize("dead_letter", [False, True], ids=["delete", "copy"])
async def test_an_entry_deleted_but_still_pending_is_acknowledged_away_as_already_gone(
    redis_server: Any, aio: redis.asyncio.Redis, dead_letter: bool
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 2, deliveries=2)
    client.xdel(stream, ids[0])  # a plain XDEL: its pending entry dangles, its payload is nil
    dlq = f"{stream}:dead"

    policy = Policy(min_deliveries=2, dead_letter=dlq if dead_letter else None)
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()

    gone = DeleteResult("redis", stream, (ids[0],), Semantics.EXACT, Outcome.ALREADY_GONE, 0)
    assert gone in report.results
    assert outcomes(report) == {"already_gone": 1, "deleted": 1}
    assert pending_ids(client, stream, GROUP) == []
    assert client.xlen(stream) == 0
    assert [d["msgdel-origin-id"] for d in dead_letters(client, dlq)] == (
        [ids[1]] if dead_letter else []
    )  # nothing to copy for the entry that was gone


@pytest.mark.parametrize("dead_letter", [False, True], ids=["delete", "copy"])
async def test_an_entry_another_group_still_needs_is_acknowledged_here_and_kept_deferred(
    redis_server: Any, aio: redis.asyncio.Redis, dead_letter: bool
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 2, deliveries=3)
    client.xgroup_create(stream, OTHER, id="0")  # another group has not read them yet
    dlq = f"{stream}:dead"

    policy = Policy(min_deliveries=3, dead_letter=dlq if dead_letter else None)
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()

    assert outcomes(report) == {"deferred": 2}
    assert entry_ids(client, stream) == ids  # kept for the other group
    assert pending_ids(client, stream, GROUP) == []  # no longer pending here
    assert client.xlen(dlq) == (2 if dead_letter else 0)
    assert report.dead_lettered == (2 if dead_letter else 0)


@pytest.mark.parametrize("dead_letter", [False, True], ids=["delete", "copy"])
async def test_ignore_other_groups_deletes_for_every_group(
    redis_server: Any, aio: redis.asyncio.Redis, dead_letter: bool
) -> None:
    client = redis_server.client()
    stream, _ids = dead_stream(client, 2, deliveries=3)
    client.xgroup_create(stream, OTHER, id="0")

    policy = Policy(min_deliveries=3, ignore_other_groups=True,
                    dead_letter=f"{stream}:dead" if dead_letter else None)  # fmt: skip
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()

    assert outcomes(report) == {"deleted": 2}
    assert client.xlen(stream) == 0


@pytest.mark.parametrize("dead_letter", [False, True], ids=["delete", "copy"])
async def test_a_dry_run_changes_nothing_and_reports_every_dead_entry_skipped(
    redis_server: Any, aio: redis.asyncio.Redis, dead_letter: bool
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 3, deliveries=2)
    dlq = f"{stream}:dead"
    before = client.xpending_range(stream, GROUP, "-", "+", 10)

    policy = Policy(min_deliveries=2, dead_letter=dlq if dead_letter else None)
    reaper = RedisReaper(aio, stream=stream, group=GROUP, policy=policy, dry_run=True)
    report = await reaper.sweep()

    assert report.dry_run
    assert (report.dead, outcomes(report)) == (3, {"skipped": 3})
    assert report.reaped == 0
    assert entry_ids(client, stream) == ids
    assert [p["message_id"] for p in client.xpending_range(stream, GROUP, "-", "+", 10)] == [
        p["message_id"] for p in before
    ]
    assert [p["times_delivered"] for p in client.xpending_range(stream, GROUP, "-", "+", 10)] == [
        2, 2, 2
    ]  # fmt: skip
    assert client.exists(dlq) == 0


async def test_observers_see_every_reaped_entry_in_both_policies(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    registry = Registry()
    seen: list[DeletionReport] = []
    registry.add_observer(seen.append)
    for dead_letter in (None, "dead"):
        stream, ids = dead_stream(client, 3, deliveries=2)
        client.xdel(stream, ids[0])
        policy = Policy(min_deliveries=2, dead_letter=dead_letter and f"{stream}:{dead_letter}")
        await RedisReaper(aio, stream=stream, group=GROUP, policy=policy,
                          registry=registry).sweep()  # fmt: skip
        got = [r for report in seen for r in report.results if r.target == stream]
        assert sorted((r.ids[0], r.outcome.value) for r in got) == [
            (ids[0], "already_gone"), (ids[1], "deleted"), (ids[2], "deleted")
        ]  # fmt: skip
    assert {report.operation for report in seen} == {"delete_at"}


async def test_a_sweep_holds_one_page_at_a_time_and_keeps_a_bounded_sample(
    redis8_server: Any,
) -> None:
    client = redis8_server.client()
    stream, _ids = dead_stream(client, 3000, deliveries=2)
    registry = Registry()
    sizes: list[int] = []
    registry.add_observer(lambda report: sizes.append(len(report.messages)))
    aio = redis.asyncio.Redis.from_url(redis8_server.url)
    try:
        reaper = RedisReaper(aio, stream=stream, group=GROUP, page_size=100, sample=10,
                             policy=Policy(min_deliveries=2), registry=registry)  # fmt: skip
        report = await reaper.sweep()
    finally:
        await aio.aclose()

    assert (report.scanned, report.count(Outcome.DELETED)) == (3000, 3000)
    assert len(sizes) == 30
    assert max(sizes) == 100
    assert len(report.results) == 10
    assert client.xlen(stream) == 0


async def test_two_reapers_on_one_group_at_once_dead_letter_each_entry_exactly_once(
    redis_server: Any,
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 2000, deliveries=2)
    dlq = f"{stream}:dead"
    clients = [redis.asyncio.Redis.from_url(redis_server.url) for _ in range(2)]
    try:
        reapers = [
            RedisReaper(c, stream=stream, group=GROUP, page_size=50,
                        policy=Policy(min_deliveries=2, dead_letter=dlq))
            for c in clients
        ]  # fmt: skip
        reports = await asyncio.gather(*(r.sweep() for r in reapers))
    finally:
        for c in clients:
            await c.aclose()

    copies = Counter(d["msgdel-origin-id"] for d in dead_letters(client, dlq))
    assert sorted(copies) == sorted(ids)
    assert set(copies.values()) == {1}
    assert sum(r.dead_lettered for r in reports) == 2000
    assert sum(r.count(Outcome.DELETED) for r in reports) == 2000
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream, GROUP) == []


def where_is(client: Any, stream: str, dlq: str, ids: Sequence[str]) -> Counter[str]:
    """For each of ``ids``: 'pending' (still in the stream and pending), 'dead-lettered' (in
    the dead-letter stream once, gone from the stream and the pending list), else a fault:
    'lost' (neither), 'twice' (copied more than once) or 'both'."""
    copies = Counter(d["msgdel-origin-id"] for d in dead_letters(client, dlq))
    stored, pending = set(entry_ids(client, stream)), set(pending_ids(client, stream, GROUP))
    places: Counter[str] = Counter()
    for i in ids:
        here = i in stored and i in pending
        if copies[i] > 1:
            places["twice"] += 1
        elif here and copies[i]:
            places["both"] += 1
        elif here:
            places["pending"] += 1
        elif copies[i] and i not in stored and i not in pending:
            places["dead-lettered"] += 1
        else:
            places["lost"] += 1
    return places


async def test_a_killed_connection_mid_sweep_loses_no_entry_and_the_retry_copies_none_twice(
    redis_server: Any,
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 600, deliveries=3)
    dlq = f"{stream}:dead"
    policy = Policy(min_deliveries=3, dead_letter=dlq)
    # No retries: the killed connection fails the sweep instead of being reconnected.
    aio = redis.asyncio.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0))
    try:
        own_id = await aio.client_id()
        swept = 0

        def kill_when_a_third_is_done(entries: int) -> None:  # between two pages, at once
            nonlocal swept
            swept += entries
            if 200 <= swept < 200 + entries:
                client.client_kill_filter(_id=own_id)

        reaper = RedisReaper(aio, stream=stream, group=GROUP, policy=policy, page_size=20)
        report = await reaper.sweep(progress=kill_when_a_third_is_done)
    finally:
        await aio.aclose()

    assert not report.complete
    assert report.error is not None
    assert report.error.retryable  # type: ignore[attr-defined]
    places = where_is(client, stream, dlq, ids)
    assert set(places) == {"pending", "dead-lettered"}, places  # never lost, never in both

    retry = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        again = await RedisReaper(retry, stream=stream, group=GROUP, policy=policy).sweep()
    finally:
        await retry.aclose()
    assert again.complete
    assert where_is(client, stream, dlq, ids) == {"dead-lettered": 600}


async def test_a_server_stopped_mid_sweep_loses_no_entry_and_a_restarted_reaper_finishes(
    own_redis: Any,
) -> None:
    client = own_redis.client()
    stream, ids = dead_stream(client, 600, deliveries=3)
    dlq = f"{stream}:dead"
    policy = Policy(min_deliveries=3, dead_letter=dlq)
    aio = redis.asyncio.Redis.from_url(own_redis.url, retry=Retry(NoBackoff(), 0))
    try:
        swept = 0

        def stop_when_a_third_is_done(entries: int) -> None:  # between two pages, at once
            nonlocal swept
            swept += entries
            if 200 <= swept < 200 + entries:
                own_redis.stop()

        reaper = RedisReaper(aio, stream=stream, group=GROUP, policy=policy, page_size=20)
        report = await reaper.sweep(progress=stop_when_a_third_is_done)
    finally:
        await aio.aclose()
    assert not report.complete

    own_redis.start()  # the append-only file brings back what was written
    client = own_redis.client()
    assert set(where_is(client, stream, dlq, ids)) <= {"pending", "dead-lettered"}
    async with RedisReaper(own_redis.url, stream=stream, group=GROUP, policy=policy,
                           interval=0.05) as reaper:  # fmt: skip
        await eventually(lambda: client.xlen(stream), 0)
        await eventually(lambda: reaper.last_report is not None, True)  # its sweep ended
    assert reaper.last_report is not None
    assert where_is(client, stream, dlq, ids) == {"dead-lettered": 600}


async def test_async_with_sweeps_every_interval_and_reaps_entries_that_die_later(
    redis8_server: Any,
) -> None:
    client = redis8_server.client()
    stream, ids = dead_stream(client, 3)
    reports: list[SweepReport] = []
    reaper = RedisReaper(redis8_server.url, stream=stream, group=GROUP, interval=0.05,
                         policy=Policy(min_deliveries=2))  # fmt: skip
    reaper.on_report = reports.append
    async with reaper:
        await eventually(lambda: len(reports) >= 2, True)
        assert entry_ids(client, stream) == ids  # delivered once: alive
        client.xclaim(stream, GROUP, "c1", 0, ids[:2])  # redelivered: dead now
        await eventually(lambda: entry_ids(client, stream), [ids[2]])
        assert reaper.running
    assert not reaper.running
    assert sum(r.count(Outcome.DELETED) for r in reports) == 2


async def test_attached_to_a_faststream_app_it_runs_while_the_app_runs(
    redis8_server: Any,
) -> None:
    from faststream import FastStream
    from faststream.redis import RedisBroker

    client = redis8_server.client()
    stream, _ids = dead_stream(client, 2, deliveries=5)
    app = FastStream(RedisBroker(redis8_server.url))
    reaper = RedisReaper(redis8_server.url, stream=stream, group=GROUP, interval=0.05,
                         policy=Policy(min_deliveries=5))  # fmt: skip
    assert reaper.attach(app) is app
    assert not reaper.running

    await app.start()
    try:
        assert reaper.running
        await eventually(lambda: client.xlen(stream), 0)
    finally:
        await app.stop()
    assert not reaper.running


async def test_a_handler_that_fails_every_time_is_dead_lettered_after_its_deliveries(
    redis8_server: Any,
) -> None:
    from faststream import FastStream
    from faststream.redis import RedisBroker, StreamSub

    client = redis8_server.client()
    stream = unique("poison")
    client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    broker = RedisBroker(redis8_server.url)
    attempts: list[str] = []

    async def handle(body: str) -> None:
        attempts.append(body)
        raise RuntimeError("this message can never be handled")

    # FastStream's pattern: one subscriber reads new entries, another claims the ones left
    # pending (XAUTOCLAIM, which counts a delivery); both fail, nothing is acknowledged.
    broker.subscriber(stream=StreamSub(stream, group=GROUP, consumer="reader"))(handle)
    broker.subscriber(stream=StreamSub(stream, group=GROUP, consumer="retrier", min_idle_time=1,
                                       polling_interval=10))(handle)  # fmt: skip

    dlq = f"{stream}:dead"
    reaper = RedisReaper(redis8_server.url, stream=stream, group=GROUP, interval=0.05,
                         policy=Policy(min_deliveries=3, dead_letter=dlq))  # fmt: skip
    app = reaper.attach(FastStream(broker))
    await app.start()
    try:
        await broker.publish("poison", stream=stream)
        await eventually(lambda: client.xlen(dlq), 1)
    finally:
        await asyncio.wait_for(app.stop(), 30)  # a hang fails here, naming the shutdown

    (copy,) = dead_letters(client, dlq)
    assert int(copy["msgdel-deliveries"]) >= 3
    assert len(attempts) >= 3
    assert client.xlen(stream) == 0
    assert pending_ids(client, stream, GROUP) == []


async def test_a_missing_group_stops_the_sweep_with_not_deletable(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, _ = dead_stream(client, 1)
    report = await RedisReaper(aio, stream=stream, group="nobody",
                               policy=Policy(min_deliveries=1)).sweep()  # fmt: skip
    assert not report.complete
    assert isinstance(report.error, NotDeletable)
    assert "nobody" in str(report.error)


async def test_a_dead_letter_key_of_another_type_copies_and_deletes_nothing(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, ids = dead_stream(client, 2, deliveries=2)
    client.set(f"{stream}:dead", "not a stream")
    policy = Policy(min_deliveries=2, dead_letter=f"{stream}:dead")
    report = await RedisReaper(aio, stream=stream, group=GROUP, policy=policy).sweep()
    assert not report.complete
    assert report.failed == 2
    assert "WRONGTYPE" in str(report.error)
    assert entry_ids(client, stream) == ids
    assert pending_ids(client, stream, GROUP) == ids


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({}, ValueError),
        ({"min_deliveries": 0}, ValueError),
        ({"min_deliveries": 2.5}, TypeError),
        ({"min_idle": -1}, ValueError),
        ({"min_idle": "60"}, TypeError),
        ({"min_deliveries": 1, "dead_letter": ""}, TypeError),
        ({"min_deliveries": 1, "ignore_other_groups": 1}, TypeError),
    ],
)
def test_a_policy_that_says_nothing_clear_is_refused(kwargs: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        Policy(**kwargs)


def test_a_reaper_refuses_bad_options_before_connecting() -> None:
    policy = Policy(min_deliveries=1)
    with pytest.raises(ValueError, match="must not be the stream"):
        RedisReaper("redis://x", stream="s", group="g",
                    policy=Policy(min_deliveries=1, dead_letter="s"))  # fmt: skip
    with pytest.raises(ValueError, match="page_size"):
        RedisReaper("redis://x", stream="s", group="g", policy=policy, page_size=0)
    with pytest.raises(TypeError, match="connection"):
        RedisReaper(None, stream="s", group="g", policy=policy)  # type: ignore[arg-type]


# -- msgdel reap -----------------------------------------------------------------------------


def reap(*args: str) -> tuple[int, str, str]:
    """Run ``msgdel reap ARGS``."""
    from msgdel.cli.app import app

    result = CliRunner().invoke(app, ["reap", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_msgdel_reap_copies_the_dead_entries_and_prints_a_summary(redis8_server: Any) -> None:
    client = redis8_server.client()
    stream, ids = dead_stream(client, 4, deliveries=3)
    client.xdel(stream, ids[0])
    status, out, err = reap(
        redis8_server.url, "--stream", stream, "--group", GROUP,
        "--min-deliveries", "3", "--dead-letter", f"{stream}:dead",
    )  # fmt: skip
    assert status == 0, err
    assert client.xlen(stream) == 0
    assert client.xlen(f"{stream}:dead") == 3
    assert "dead-lettered" in out
    assert "3" in out
    assert "already_gone" in out
    assert "deleted" in out


def test_msgdel_reap_dry_run_changes_nothing(redis8_server: Any) -> None:
    client = redis8_server.client()
    stream, ids = dead_stream(client, 2, deliveries=3)
    status, out, _ = reap(
        redis8_server.url, "--stream", stream, "--group", GROUP,
        "--min-deliveries", "3", "--dry-run",
    )  # fmt: skip
    assert status == 0
    assert "dry run: nothing was changed" in out
    assert "skipped" in out
    assert entry_ids(client, stream) == ids


def test_msgdel_reap_exits_2_without_a_criterion_and_1_for_a_missing_group(
    redis8_server: Any,
) -> None:
    status, _, err = reap(redis8_server.url, "--stream", "s", "--group", GROUP)
    assert status == 2
    assert "--min-deliveries" in err
    status, _, err = reap(redis8_server.url, "--stream", "nope", "--group", GROUP,
                          "--min-idle", "1")  # fmt: skip
    assert status == 1
    assert "nope" in err


def test_msgdel_reap_never_prints_the_password() -> None:
    status, out, err = reap("redis://user:hunter2@127.0.0.1:1", "--stream", "s",
                            "--group", GROUP, "--min-idle", "1")  # fmt: skip
    assert status == 1
    assert "hunter2" not in out + err


def test_importing_msgdel_reaper_imports_no_broker_client_until_a_reaper_is_used() -> None:
    import subprocess
    import sys

    code = (
        "import sys, msgdel.reaper\n"
        "from msgdel.reaper import Policy, SweepReport\n"
        "print([c for c in ('redis', 'nats') if c in sys.modules])\n"
        "msgdel.reaper.RedisReaper\n"
        "print([c for c in ('redis', 'nats') if c in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['redis']"]
