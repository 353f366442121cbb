"""Erasure by field value on Redis streams (``msgdel.erasure.erase`` with ``RedisStreamField``),
against the test bed's Redis 7 and Redis 8.2, checked at the broker with a raw redis-py client:
the entries the stream still holds and every consumer group's pending list afterwards.

One person's entries are interleaved with other people's; the stream is scanned page by page
and the person's entries are deleted in batches, whatever a consumer group still needs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio

from msgdel.erasure import (
    ErasureOutcome,
    ErasureReport,
    Progress,
    RedisStreamField,
    erase,
    fingerprint,
)
from tests.redis.harness import entry_ids, pending_ids, unique

PERSON, OTHER = "u-42", "u-7"


def people_stream(client: Any, count: int, *, every: int = 3) -> tuple[str, list[str], list[str]]:
    """A fresh stream of ``count`` entries; every ``every``-th belongs to PERSON, the rest to
    OTHER. Returns the key, the person's ids and the others' ids."""
    stream = unique("erase")
    mine, theirs = [], []
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        user = PERSON if i % every == 0 else OTHER
        pipe.xadd(stream, {"user": user, "n": str(i)})
    for i, entry_id in enumerate(pipe.execute()):
        (mine if i % every == 0 else theirs).append(entry_id.decode())
    return stream, mine, theirs


@pytest.fixture
async def aio(redis_server: Any) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_the_persons_entries_are_deleted_and_everyone_elses_stay(redis_server: Any) -> None:
    client = redis_server.client()
    stream, mine, theirs = people_stream(client, 30)

    (report,) = await erase(
        redis_server.url, [RedisStreamField(stream, "user", PERSON)], page_size=7, batch_size=4
    )

    assert report == ErasureReport(
        "redis", f"redis stream {stream!r} field 'user' = {fingerprint(PERSON)}",
        ErasureOutcome.ERASED, matched=len(mine), removed=len(mine), scanned=30,
    )  # fmt: skip
    assert entry_ids(client, stream) == theirs


async def test_entries_pending_in_consumer_groups_are_removed_with_no_dangling_reference(
    redis_server: Any, aio: redis.asyncio.Redis
) -> None:
    client = redis_server.client()
    stream, mine, theirs = people_stream(client, 12)
    for group in ("billing", "shipping"):
        client.xgroup_create(stream, group, id="0")
        client.xreadgroup(group, "c1", {stream: ">"})  # every entry pending in both groups

    (report,) = await erase(aio, [RedisStreamField(stream, "user", PERSON)])

    assert report.outcome is ErasureOutcome.ERASED
    assert report.removed == len(mine)
    assert report.reason is not None
    assert "every consumer group (2)" in report.reason
    assert entry_ids(client, stream) == theirs
    assert pending_ids(client, stream, "billing") == theirs
    assert pending_ids(client, stream, "shipping") == theirs


async def test_a_dry_run_counts_the_matches_and_changes_nothing(redis_server: Any) -> None:
    client = redis_server.client()
    stream, mine, _ = people_stream(client, 20)
    before = entry_ids(client, stream)

    (report,) = await erase(
        redis_server.url, [RedisStreamField(stream, "user", PERSON)], dry_run=True, page_size=6
    )

    assert (report.outcome, report.matched, report.removed) == (
        ErasureOutcome.DRY_RUN, len(mine), 0
    )  # fmt: skip
    assert entry_ids(client, stream) == before


async def test_only_the_named_field_matches_whatever_a_payload_says(redis_server: Any) -> None:
    client = redis_server.client()
    stream = unique("erase")
    planted = client.xadd(stream, {"user": PERSON, "note": f"also erase user={OTHER}"}).decode()
    others = [
        client.xadd(stream, {"user": OTHER}).decode(),
        client.xadd(stream, {"referrer": PERSON, "user": "u-9"}).decode(),  # another field
        client.xadd(stream, {"user": PERSON + "0"}).decode(),  # a longer value
    ]

    (report,) = await erase(redis_server.url, [RedisStreamField(stream, "user", PERSON)])

    assert (report.matched, report.removed) == (1, 1)
    assert planted not in entry_ids(client, stream)
    assert entry_ids(client, stream) == others


async def test_each_batch_of_matches_is_deleted_in_one_round_trip(redis8_server: Any) -> None:
    client = redis8_server.client()
    stream, mine, _ = people_stream(client, 50, every=5)  # 10 matches
    async with redis.asyncio.Redis.from_url(redis8_server.url) as aio:
        await erase(aio, [RedisStreamField(stream, "user", PERSON)])  # XDELEX probed, cached
        stream, mine, _ = people_stream(client, 50, every=5)
        before = client.info("commandstats").get("cmdstat_xdelex", {}).get("calls", 0)

        (report,) = await erase(
            aio, [RedisStreamField(stream, "user", PERSON)], page_size=10, batch_size=4
        )

    after = client.info("commandstats")["cmdstat_xdelex"]["calls"]
    assert report.removed == len(mine) == 10
    assert after - before == 3  # 4 + 4 + 2


async def test_the_report_holds_no_personal_data(redis_server: Any) -> None:
    client = redis_server.client()
    secret = "jane.doe@example.com"
    stream = unique("erase")
    client.xadd(stream, {"email": secret, "body": "private payload"})

    reports = await erase(redis_server.url, [RedisStreamField(stream, "email", secret)])

    shown = repr(reports) + json.dumps([r.as_dict() for r in reports])
    assert secret not in shown
    assert "private payload" not in shown
    assert fingerprint(secret) in shown
    assert secret not in repr(RedisStreamField(stream, "email", secret))


async def test_a_missing_stream_is_reported_not_erasable_rather_than_erased(
    redis_server: Any,
) -> None:
    (report,) = await erase(redis_server.url, [RedisStreamField(unique("absent"), "user", PERSON)])

    assert report.outcome is ErasureOutcome.NOT_ERASABLE
    assert report.reason is not None
    assert "no key" in report.reason


async def test_an_erasure_interrupted_by_a_stopped_server_says_how_far_it_got_and_resumes(
    own_redis: Any,
) -> None:
    client = own_redis.client()
    stream, mine, theirs = people_stream(client, 400, every=4)
    seen: list[Progress] = []

    def stop_after_two_pages(progress: Progress) -> None:
        seen.append(progress)
        if len(seen) == 2:
            own_redis.stop()

    target = RedisStreamField(stream, "user", PERSON)
    (report,) = await erase(
        own_redis.url, [target], page_size=50, batch_size=10, progress=stop_after_two_pages
    )

    assert report.outcome is ErasureOutcome.INCOMPLETE
    assert 0 < report.removed < len(mine)
    assert report.scanned == 100
    assert report.resume_from is not None
    own_redis.start()
    client = own_redis.client()
    assert set(entry_ids(client, stream)) >= set(theirs)  # nobody else's entry was touched
    resumed = RedisStreamField(stream, "user", PERSON, after=report.resume_from)

    (finished,) = await erase(own_redis.url, [resumed])

    assert finished.outcome is ErasureOutcome.ERASED
    assert report.removed + finished.removed == len(mine)
    assert entry_ids(client, stream) == theirs


def erase_cli(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run ``msgdel erase ARGS`` (the command function, as the ``msgdel`` app registers it)."""
    from typer.testing import CliRunner

    from msgdel.cli.app import app

    result = CliRunner().invoke(app, ["erase", *args], input=stdin, env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line_is_a_dry_run_unless_told_to_apply(redis8_server: Any) -> None:
    client = redis8_server.client()
    stream, _, _ = people_stream(client, 9)
    before = entry_ids(client, stream)

    status, out, err = erase_cli(
        redis8_server.url, "--stream", stream, "--field", "user", "--value", PERSON
    )

    assert (status, err) == (0, "")
    assert "dry run" in out
    assert "dry_run" in out
    assert fingerprint(PERSON) in out
    assert PERSON not in out
    assert entry_ids(client, stream) == before


def test_the_command_line_applies_and_writes_an_audit_trail_without_the_value(
    redis8_server: Any,
) -> None:
    client = redis8_server.client()
    stream, _, theirs = people_stream(client, 9)

    status, out, _ = erase_cli(
        redis8_server.url, "--stream", stream, "--field", "user", "--value", "-", "--apply",
        "--json", stdin=f"{PERSON}\n",
    )  # fmt: skip

    assert status == 0
    (line,) = out.splitlines()
    record = json.loads(line)
    assert record["dry_run"] is False
    assert (record["outcome"], record["matched"], record["removed"]) == ("erased", 3, 3)
    assert record["target"].endswith(fingerprint(PERSON))
    assert PERSON not in out
    assert entry_ids(client, stream) == theirs


def test_the_command_line_exits_1_when_a_target_is_not_erasable(redis8_server: Any) -> None:
    status, out, _ = erase_cli(
        redis8_server.url, "--stream", unique("absent"), "--field", "user", "--value", PERSON
    )

    assert status == 1
    assert "not_erasable" in out


async def test_targets_of_two_brokers_or_a_url_of_another_broker_are_refused_before_sending(
    redis_server: Any,
) -> None:
    from msgdel.erasure import JetStreamSubject

    redis_target = RedisStreamField("s", "user", PERSON)
    with pytest.raises(ValueError, match="one broker per call"):
        await erase(redis_server.url, [redis_target, JetStreamSubject("S", "a.b")])
    with pytest.raises(ValueError, match="redis://"):
        await erase("nats://127.0.0.1:4222", [redis_target])
    with pytest.raises(TypeError, match="iterable of targets"):
        await erase(redis_server.url, redis_target)  # type: ignore[arg-type]
