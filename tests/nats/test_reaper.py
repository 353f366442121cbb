"""The JetStream dead-letter reaper (``msgdel.reaper.JetStreamReaper``) against the test bed's
real nats-server, checked in the stream's own state (its stored sequences) and the
dead-letter stream's contents.

Messages die as they do in production: a durable pull consumer with ``max_deliver`` fetches
them and never acknowledges (each redelivery after ``ack_wait``), or its handler ``term()``s
them; the server then sends the consumer's advisories."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

from msgdel import DeletionReport, Outcome, Registry
from msgdel.reaper import JetStreamReaper, SweepReport
from tests.eventually import eventually
from tests.nats.harness import unique

CONSUMER = "worker"


@pytest.fixture
async def nc(nats_server: Any) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


async def stream_of(
    nc: Client, count: int, retention: RetentionPolicy = RetentionPolicy.WORK_QUEUE
) -> str:
    """A fresh stream of ``count`` messages (``<stream>.orders``, body ``b"<n>"``, header
    ``n``) with a durable pull consumer that gives up after two deliveries."""
    js = nc.jetstream()
    name = unique("REAP").replace("-", "_")
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], retention=retention))
    for n in range(count):
        await js.publish(f"{name}.orders", str(n).encode(), headers={"n": str(n)})
    await js.add_consumer(
        name,
        ConsumerConfig(durable_name=CONSUMER, ack_policy=AckPolicy.EXPLICIT, max_deliver=2,
                       ack_wait=0.2),
    )  # fmt: skip
    return name


async def dead_letter_stream(nc: Client, stream: str) -> str:
    """A stream capturing the dead-letter subject ``dead.<stream>``; returns the subject."""
    subject = f"dead.{stream}"
    await nc.jetstream().add_stream(StreamConfig(name=f"DEAD_{stream}", subjects=[subject]))
    return subject


async def fail_every_delivery(nc: Client, stream: str, *, keep: int = 0, term: int = 0) -> None:
    """Fetch every message until the consumer gives up: ack the first ``keep`` sequences,
    ``term()`` the next ``term``, never ack the rest (redelivered, then given up)."""
    sub = await nc.jetstream().pull_subscribe_bind(CONSUMER, stream)
    try:
        for _ in range(3):  # two deliveries, then a fetch that finds it given up
            try:
                msgs = await sub.fetch(100, timeout=0.3)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                msgs = []
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                if seq <= keep:
                    await msg.ack_sync()
                elif seq <= keep + term:
                    await msg.term()
            await asyncio.sleep(0.25)  # past ack_wait: redelivered, or given up
    finally:
        await sub.unsubscribe()


async def stored(nc: Client, stream: str) -> list[int]:
    """The sequences ``stream`` stores, in order."""
    js, seqs, seq = nc.jetstream(), [], 1
    while True:
        try:
            found = await js.get_msg(stream, seq, subject=">", next=True)
        except nats.js.errors.NotFoundError:
            return seqs
        assert found.seq is not None
        seqs.append(found.seq)
        seq = found.seq + 1


async def dead_letters(nc: Client, stream: str) -> list[Any]:
    """The messages of the dead-letter stream of ``stream``."""
    js = nc.jetstream()
    name = f"DEAD_{stream}"
    return [await js.get_msg(name, seq) for seq in await stored(nc, name)]


def outcomes(report: SweepReport | None) -> dict[str, int]:
    assert report is not None
    return {o.value: n for o, n in report.outcomes.items()}


async def test_a_message_past_max_deliver_is_deleted_when_its_advisory_arrives(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 3)
    registry = Registry()
    seen: list[DeletionReport] = []
    registry.add_observer(seen.append)
    async with JetStreamReaper(nc, stream=stream, consumer=CONSUMER, registry=registry):
        await fail_every_delivery(nc, stream, keep=1)
        assert await eventually(lambda: stored(nc, stream), []) == []
    results = [r for report in seen for r in report.results]
    assert sorted((r.ids, r.outcome) for r in results) == [
        (("2",), Outcome.DELETED), (("3",), Outcome.DELETED)
    ]  # fmt: skip


async def test_a_dead_message_is_copied_with_its_origin_to_the_dead_letter_subject_then_deleted(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 2)
    subject = await dead_letter_stream(nc, stream)
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject)
    async with reaper:
        await fail_every_delivery(nc, stream)
        await eventually(lambda: stored(nc, stream), [])
    # the advisories of the two messages may come in either order, and so their copies
    copies = sorted(await dead_letters(nc, stream), key=lambda c: c.data)
    assert [c.data for c in copies] == [b"0", b"1"]
    assert [c.headers for c in copies] == [
        {
            "n": str(n), "Msgdel-Origin-Stream": stream, "Msgdel-Origin-Sequence": str(n + 1),
            "Msgdel-Origin-Subject": f"{stream}.orders", "Msgdel-Origin-Consumer": CONSUMER,
            "Msgdel-Deliveries": "2", "Msgdel-Reason": "max_deliveries",
            "Nats-Msg-Id": f"msgdel-dead-letter:{stream}:{n + 1}",
        }
        for n in range(2)
    ]  # fmt: skip


async def test_a_terminated_message_on_a_limits_stream_is_reaped_and_an_acked_one_stays(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 3, RetentionPolicy.LIMITS)
    subject = await dead_letter_stream(nc, stream)
    async with JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject):
        await fail_every_delivery(nc, stream, keep=1, term=1)
        await eventually(lambda: stored(nc, stream), [1])
    reasons = [c.headers["Msgdel-Reason"] for c in await dead_letters(nc, stream)]
    assert sorted(reasons) == ["max_deliveries", "terminated"]


async def test_a_terminated_message_on_a_work_queue_stream_was_removed_by_the_server_already(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 1)
    subject = await dead_letter_stream(nc, stream)
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject)
    async with reaper:
        await fail_every_delivery(nc, stream, term=1)
        await eventually(lambda: reaper.last_report is not None and reaper.last_report.dead, 1)
    assert outcomes(reaper.last_report) == {"already_gone": 1}, reaper.last_report
    assert await dead_letters(nc, stream) == []  # nothing was left to copy
    assert await stored(nc, stream) == []


async def test_a_dead_letter_subject_no_stream_captures_copies_nothing_and_deletes_nothing(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 1)
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter="nowhere.dead")
    async with reaper:
        await fail_every_delivery(nc, stream)
        await eventually(lambda: reaper.last_report is not None and reaper.last_report.failed, 1)
    assert reaper.last_report is not None
    assert "nowhere.dead" in str(reaper.last_report.errors[0])
    assert await stored(nc, stream) == [1]  # kept: it could not be copied


async def test_advisories_missed_while_down_are_recovered_from_the_consumers_state(
    nc: Client,
) -> None:
    stream = await stream_of(nc, 4)
    subject = await dead_letter_stream(nc, stream)
    await fail_every_delivery(nc, stream, keep=1)  # no reaper is listening
    assert await stored(nc, stream) == [2, 3, 4]

    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject)
    report = await reaper.sweep()

    assert report.complete
    assert (report.dead, report.count(Outcome.DELETED)) == (3, 3)
    assert await stored(nc, stream) == []
    copies = await dead_letters(nc, stream)
    assert [c.headers["Msgdel-Origin-Sequence"] for c in copies] == ["2", "3", "4"]
    assert {c.headers["Msgdel-Reason"] for c in copies} == {"recovered"}


async def test_a_recovery_repeated_after_a_crash_copies_nothing_twice(nc: Client) -> None:
    stream = await stream_of(nc, 2)
    subject = await dead_letter_stream(nc, stream)
    await fail_every_delivery(nc, stream)
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject)
    await reaper._copy(nc, 1, 0, "recovered")  # the reaper died after copying, before deleting

    report = await reaper.sweep()

    assert report.count(Outcome.DELETED) == 2
    assert [c.headers["Msgdel-Origin-Sequence"] for c in await dead_letters(nc, stream)] == [
        "1", "2"
    ]  # fmt: skip


async def test_recovery_waits_while_a_message_awaits_its_acknowledgement(nc: Client) -> None:
    stream = await stream_of(nc, 2)
    await fail_every_delivery(nc, stream)
    await nc.jetstream().publish(f"{stream}.orders", b"in flight")
    sub = await nc.jetstream().pull_subscribe_bind(CONSUMER, stream)
    await sub.fetch(1, timeout=2)  # delivered, not acknowledged yet

    report = await JetStreamReaper(nc, stream=stream, consumer=CONSUMER).sweep()

    assert not report.complete
    assert report.error is not None
    assert "await an acknowledgement" in str(report.error)
    assert await stored(nc, stream) == [1, 2, 3]  # nothing guessed
    await sub.unsubscribe()


async def test_a_dry_run_changes_nothing(nc: Client) -> None:
    stream = await stream_of(nc, 2)
    subject = await dead_letter_stream(nc, stream)
    await fail_every_delivery(nc, stream)
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, dead_letter=subject,
                             dry_run=True)  # fmt: skip
    report = await reaper.sweep()
    assert outcomes(report) == {"skipped": 2}
    assert await stored(nc, stream) == [1, 2]
    assert await dead_letters(nc, stream) == []


async def test_on_a_limits_stream_other_consumers_can_keep_it_deferred(nc: Client) -> None:
    stream = await stream_of(nc, 1, RetentionPolicy.LIMITS)
    js = nc.jetstream()
    await js.add_consumer(stream, ConsumerConfig(durable_name="audit",
                                                 ack_policy=AckPolicy.EXPLICIT))  # fmt: skip
    reaper = JetStreamReaper(nc, stream=stream, consumer=CONSUMER, ignore_other_consumers=False)
    async with reaper:
        await fail_every_delivery(nc, stream)
        await eventually(lambda: reaper.last_report is not None and reaper.last_report.dead, 1)
    assert outcomes(reaper.last_report) == {"deferred": 1}
    assert await stored(nc, stream) == [1]  # "audit" has not read it


async def test_a_missing_consumer_is_reported_not_raised(nc: Client) -> None:
    stream = await stream_of(nc, 1)
    report = await JetStreamReaper(nc, stream=stream, consumer="nobody").sweep()
    assert not report.complete
    assert "nobody" in str(report.error)


async def test_attached_to_a_faststream_app_it_runs_while_the_app_runs(
    nats_server: Any, nc: Client
) -> None:
    from faststream import FastStream
    from faststream.nats import NatsBroker

    stream = await stream_of(nc, 1)
    app = FastStream(NatsBroker(nats_server.url))
    reaper = JetStreamReaper(nats_server.url, stream=stream, consumer=CONSUMER)
    reaper.attach(app)
    await app.start()
    try:
        assert reaper.running
        await fail_every_delivery(nc, stream)
        await eventually(lambda: stored(nc, stream), [])
    finally:
        await app.stop()
    assert not reaper.running


def test_bad_options_are_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="stream"):
        JetStreamReaper("nats://x", stream="a.b", consumer=CONSUMER)
    with pytest.raises(TypeError, match="consumer"):
        JetStreamReaper("nats://x", stream="S", consumer="")
    with pytest.raises(TypeError, match="ignore_other_consumers"):
        JetStreamReaper("nats://x", stream="S", consumer="c",
                        ignore_other_consumers=1)  # type: ignore[arg-type]  # fmt: skip


# -- msgdel reap nats://... --------------------------------------------------------------------


async def reap(*args: str) -> tuple[int, str, str]:
    """Run ``msgdel reap ARGS`` (in a thread: it runs its own event loop)."""
    from typer.testing import CliRunner

    from msgdel.cli.app import app

    def run() -> tuple[int, str, str]:
        result = CliRunner().invoke(app, ["reap", *args], env={"COLUMNS": "200"})
        return result.exit_code, result.stdout, result.stderr

    return await asyncio.to_thread(run)


def rows(out: str) -> dict[str, str]:
    """The summary table's rows: name -> count."""
    found = {}
    for line in out.splitlines():
        name, _, count = line.strip().rpartition(" ")
        if count.isdigit():
            found[name.strip()] = count
    return found


async def test_msgdel_reap_deletes_a_work_queue_streams_given_up_messages_and_keeps_the_rest(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 4)
    await fail_every_delivery(nc, stream, keep=1)
    await nc.jetstream().publish(f"{stream}.orders", b"not delivered yet")

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER)

    assert status == 0, err
    assert f"msgdel reap {stream} ({CONSUMER})" in out
    assert rows(out) == {
        "delivered, scanned": "3", "given up by the consumer": "3", "deleted": "3",
        "dead-lettered": "0",
    }  # fmt: skip
    assert await stored(nc, stream) == [5]  # the undelivered message stays
    assert "complete in" in out


async def test_msgdel_reap_sweeps_a_backlog_of_several_batches_with_a_progress_bar(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 250)
    js, sub = nc.jetstream(), await nc.jetstream().pull_subscribe_bind(CONSUMER, stream)
    try:  # every message is fetched until the consumer gives up on it
        while (info := await js.consumer_info(stream, CONSUMER)).num_pending or (
            info.num_ack_pending
        ):
            with contextlib.suppress(nats.errors.TimeoutError, asyncio.TimeoutError):
                await sub.fetch(250, timeout=0.3)
    finally:
        await sub.unsubscribe()

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER)

    assert status == 0, err
    assert rows(out)["deleted"] == "250"
    assert "250/250" in err  # the progress bar, on standard error
    assert await stored(nc, stream) == []


async def test_msgdel_reap_copies_the_dead_messages_to_the_dead_letter_subject_first(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 3)
    subject = await dead_letter_stream(nc, stream)
    await fail_every_delivery(nc, stream)

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER,
                                  "--dead-letter", subject)  # fmt: skip

    assert status == 0, err
    assert (rows(out)["deleted"], rows(out)["dead-lettered"]) == ("3", "3")
    assert await stored(nc, stream) == []
    copies = await dead_letters(nc, stream)
    assert [(c.data, c.headers["Msgdel-Origin-Sequence"]) for c in copies] == [
        (b"0", "1"), (b"1", "2"), (b"2", "3")
    ]  # fmt: skip


async def test_msgdel_reap_dry_run_reports_the_dead_messages_and_changes_nothing(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 2)
    subject = await dead_letter_stream(nc, stream)
    await fail_every_delivery(nc, stream)

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER,
                                  "--dead-letter", subject, "--dry-run")  # fmt: skip

    assert status == 0, err
    assert "dry run: nothing was changed" in out
    assert rows(out) == {"delivered, scanned": "2", "given up by the consumer": "2",
                         "skipped": "2"}  # fmt: skip
    assert await stored(nc, stream) == [1, 2]
    assert await dead_letters(nc, stream) == []


async def test_msgdel_reap_keeps_every_message_when_the_dead_letter_copy_fails(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 2)
    await fail_every_delivery(nc, stream)

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER,
                                  "--dead-letter", "nowhere.dead")  # fmt: skip

    assert status == 1
    assert "2 failed, the first: no JetStream stream captures the dead-letter subject" in err
    assert (rows(out)["failed"], rows(out)["dead-lettered"]) == ("2", "0")
    assert "deleted" not in rows(out)
    assert await stored(nc, stream) == [1, 2]


async def test_msgdel_reap_refuses_a_limits_stream_whose_state_cannot_tell_the_dead_ones(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 2, RetentionPolicy.LIMITS)
    await fail_every_delivery(nc, stream)

    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER)

    assert (status, out) == (1, "")
    assert "limits retention" in err
    assert len(err.splitlines()) == 1
    assert await stored(nc, stream) == [1, 2]


async def test_msgdel_reap_stops_with_status_1_while_a_message_awaits_its_acknowledgement(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 1)
    await fail_every_delivery(nc, stream)
    await nc.jetstream().publish(f"{stream}.orders", b"in flight")
    sub = await nc.jetstream().pull_subscribe_bind(CONSUMER, stream)
    await sub.fetch(1, timeout=2)  # delivered, not acknowledged yet
    try:
        status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", CONSUMER)
    finally:
        await sub.unsubscribe()

    assert status == 1
    assert "stopped early" in out
    assert "await an acknowledgement" in err
    assert await stored(nc, stream) == [1, 2]


async def test_msgdel_reap_exits_1_for_a_missing_consumer_and_never_prints_the_password(
    nats_server: Any, nc: Client
) -> None:
    stream = await stream_of(nc, 1)
    status, out, err = await reap(nats_server.url, "--stream", stream, "--consumer", "nobody")
    assert (status, out) == (1, "")
    assert "'nobody'" in err

    status, out, err = await reap("nats://user:hunter2@127.0.0.1:1", "--stream", stream,
                                  "--consumer", CONSUMER)  # fmt: skip
    assert status == 1
    assert "hunter2" not in out + err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give --consumer"),
        (["--consumer", CONSUMER, "--group", "billing"], "--group is for a Redis"),
        (["--consumer", CONSUMER, "--min-deliveries", "3"], "--min-deliveries is for Redis"),
        (["--consumer", CONSUMER, "--min-idle", "60"], "--min-idle is for Redis"),
        (["--consumer", CONSUMER, "--ignore-other-groups"], "--ignore-other-groups is for Redis"),
        (["--consumer", CONSUMER, "--page-size", "10"], "--page-size is for Redis"),
        (["--consumer", CONSUMER, "--rate", "10"], "--rate is for Redis"),
        (["--consumer", "two words"], "consumer must be a NATS name"),
        (["--consumer", CONSUMER, "--dead-letter", "a b"], "--dead-letter must be a NATS name"),
    ],
)
async def test_msgdel_reap_refuses_a_bad_argument_for_nats_in_one_line_with_status_2(
    args: list[str], says: str
) -> None:
    status, out, err = await reap("nats://127.0.0.1:1", "--stream", "S", *args)
    assert (status, out) == (2, "")
    assert err.startswith(f"msgdel reap: {says}")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ([], "give --group"),
        (["--group", "g", "--min-deliveries", "1", "--consumer", CONSUMER], "--consumer is for"),
        (["--group", "g", "--min-deliveries", "1", "--keep-for-other-consumers"],
         "--ignore-other-consumers and --keep-for-other-consumers are for JetStream"),
    ],
)  # fmt: skip
async def test_msgdel_reap_refuses_jetstream_options_for_redis_in_one_line_with_status_2(
    args: list[str], says: str
) -> None:
    status, out, err = await reap("redis://127.0.0.1:1", "--stream", "s", *args)
    assert (status, out) == (2, "")
    assert err.startswith(f"msgdel reap: {says}")
    assert len(err.splitlines()) == 1


async def test_msgdel_reap_refuses_a_url_of_another_broker() -> None:
    status, _, err = await reap("kafka://127.0.0.1:1", "--stream", "s", "--consumer", CONSUMER)
    assert status == 2
    assert "is not a Redis or NATS URL" in err
