"""Erasure on NATS (``msgdel.erasure.erase``): a JetStream purge by subject, a KV purge of a key
with its history, an object store delete, against the test bed's nats-server. Every test reads
the server's own state afterwards with nats-py: the messages a stream still stores, a key's
history, an object's presence."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.js.client import JetStreamContext

from msgdel.address import KvKey
from msgdel.erasure import ErasureOutcome, JetStreamSubject, ObjectName, erase, fingerprint
from tests.nats.harness import stream_entries, unique

PERSON, OTHER = "u42", "u7"


@pytest.fixture
async def nc(nats_server: object) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.close()


async def people_stream(js: JetStreamContext) -> tuple[str, list[int], list[int]]:
    """A stream of ``users.<id>.<event>`` messages, the person's interleaved with another's;
    the person's sequences and the other's."""
    stream = unique("erase")
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    mine, theirs = [], []
    for i in range(12):
        user = PERSON if i % 3 == 0 else OTHER
        body = f"{{'user': '{user}', 'n': {i}}}".encode()
        ack = await js.publish(f"{stream}.{user}.event{i % 2}", body)
        (mine if user == PERSON else theirs).append(ack.seq)
    return stream, mine, theirs


async def stored(js: JetStreamContext, stream: str) -> list[int]:
    return [m.seq for m in await stream_entries(js, stream) if m.seq is not None]


async def test_a_subject_filter_purges_the_persons_messages_and_keeps_the_others(
    nats_server: object, nc: Client
) -> None:
    js = nc.jetstream()
    stream, mine, theirs = await people_stream(js)

    (report,) = await erase(nc, [JetStreamSubject(stream, f"{stream}.{PERSON}.>")])

    assert (report.outcome, report.matched, report.removed) == (
        ErasureOutcome.ERASED, len(mine), len(mine)
    )  # fmt: skip
    assert report.target == f"jetstream {stream!r} subject {fingerprint(f'{stream}.{PERSON}.>')}"
    assert await stored(js, stream) == theirs


async def test_a_dry_run_counts_the_subjects_messages_and_changes_nothing(
    nats_server: object, nc: Client
) -> None:
    js = nc.jetstream()
    stream, mine, theirs = await people_stream(js)

    (report,) = await erase(
        nats_server.url,  # type: ignore[attr-defined]
        [JetStreamSubject(stream, f"{stream}.{PERSON}.*")],
        dry_run=True,
    )

    assert (report.outcome, report.matched, report.removed) == (
        ErasureOutcome.DRY_RUN, len(mine), 0
    )  # fmt: skip
    assert await stored(js, stream) == sorted(mine + theirs)


async def test_a_payload_naming_another_person_does_not_widen_the_subject(
    nats_server: object, nc: Client
) -> None:
    js = nc.jetstream()
    stream = unique("erase")
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    await js.publish(f"{stream}.{PERSON}.x", f"erase {stream}.{OTHER}.> too".encode())
    kept = (await js.publish(f"{stream}.{OTHER}.x", b"other's")).seq

    (report,) = await erase(nc, [JetStreamSubject(stream, f"{stream}.{PERSON}.>")])

    assert report.removed == 1
    assert await stored(js, stream) == [kept]


async def test_a_kv_key_is_purged_with_its_whole_history_and_other_keys_stay(
    nats_server: object, nc: Client
) -> None:
    js = nc.jetstream()
    bucket = unique("erase")
    kv = await js.create_key_value(bucket=bucket, history=10)
    for revision in range(3):
        await kv.put(f"user.{PERSON}", f"address {revision}".encode())
    await kv.delete(f"user.{PERSON}")  # a delete marker: the history is still there
    await kv.put(f"user.{OTHER}", b"other's address")

    (report,) = await erase(nc, [KvKey(bucket, f"user.{PERSON}")])

    assert (report.outcome, report.matched, report.removed) == (ErasureOutcome.ERASED, 4, 4)
    history = await stream_entries(js, f"KV_{bucket}")
    mine = [m for m in history if m.subject == f"$KV.{bucket}.user.{PERSON}"]
    assert [m.data or b"" for m in mine] == [b""]  # only the value-less purge marker
    assert (await kv.get(f"user.{OTHER}")).value == b"other's address"

    (again,) = await erase(nc, [KvKey(bucket, f"user.{PERSON}")])

    assert again.outcome is ErasureOutcome.NOTHING_FOUND


async def test_an_object_is_deleted_and_another_stays(nats_server: object, nc: Client) -> None:
    js = nc.jetstream()
    bucket = unique("erase")
    store = await js.create_object_store(bucket)
    await store.put(f"{PERSON}.pdf", b"x" * 300_000)
    await store.put(f"{OTHER}.pdf", b"y" * 10)

    (dry,) = await erase(nc, [ObjectName(bucket, f"{PERSON}.pdf")], dry_run=True)
    (report,) = await erase(nc, [ObjectName(bucket, f"{PERSON}.pdf")])

    assert (dry.outcome, dry.matched) == (ErasureOutcome.DRY_RUN, 1)
    assert (report.outcome, report.removed) == (ErasureOutcome.ERASED, 1)
    names = {info.name for info in await store.list(ignore_deletes=True)}
    assert names == {f"{OTHER}.pdf"}
    stored = (await js.stream_info(f"OBJ_{bucket}")).state.messages
    assert stored == 3  # the other object's chunk and meta, and the person's deleted-marker
    assert (await store.get(f"{OTHER}.pdf")).data == b"y" * 10


async def test_a_stream_that_does_not_exist_is_not_erasable(
    nats_server: object, nc: Client
) -> None:
    (report,) = await erase(nc, [JetStreamSubject(unique("absent"), "a.b")])

    assert report.outcome is ErasureOutcome.NOT_ERASABLE
    assert report.reason is not None
    assert "no JetStream stream" in report.reason


def test_the_command_line_purges_a_kv_key_only_with_apply(nats_server: Any) -> None:
    import asyncio

    from typer.testing import CliRunner

    from msgdel.cli.app import app

    bucket = unique("erase")

    async def setup() -> None:
        client = await nats.connect(nats_server.url)
        kv = await client.jetstream().create_key_value(bucket=bucket, history=5)
        await kv.put(f"user.{PERSON}", b"a")
        await kv.put(f"user.{PERSON}", b"b")
        await client.close()

    async def revisions() -> int:
        client = await nats.connect(nats_server.url)
        try:
            info = await client.jetstream().stream_info(f"KV_{bucket}")
            return int(info.state.messages)
        finally:
            await client.close()

    asyncio.run(setup())
    args = [nats_server.url, "--kv", bucket, "--key", "-", "--json"]
    stdin = f"user.{PERSON}\n"

    dry = CliRunner().invoke(app, ["erase", *args], input=stdin)
    assert dry.exit_code == 0
    assert json.loads(dry.stdout)["outcome"] == "dry_run"
    assert asyncio.run(revisions()) == 2

    applied = CliRunner().invoke(app, ["erase", *args, "--apply"], input=stdin)
    assert applied.exit_code == 0
    record = json.loads(applied.stdout)
    assert (record["outcome"], record["removed"]) == ("erased", 2)
    assert PERSON not in applied.stdout
    assert asyncio.run(revisions()) == 1  # the purge marker
