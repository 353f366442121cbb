"""Deletion by address on NATS: ``msgdel.delete_at`` with a JetStream stream sequence or a KV
key, on a ``nats://`` URL or a connected nats-py client, deleted by the same adapters (and the
same code) as consumed messages. Every test reads the server's own state afterwards with
nats-py: the stream state (messages, num_deleted, first and last sequence), which sequences are
still stored, a KV key's value and history, and the deletion requests the server routed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.client import JetStreamContext

import msgdel
from msgdel import DeletionFailed, NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter
from msgdel.address import JetStreamSequence, KvKey
from tests.nats.harness import payload, stream_entries, subscribed, unique
from tests.testbed.nats import NatsServer
from tests.testbed.process import free_port

PASSWORD = "s3cr3t-pa55"


@asynccontextmanager
async def reader(server: Any) -> AsyncIterator[Client]:
    """A nats-py connection of the test's own, to set up and read the server's state."""
    client = await nats.connect(server.url)
    try:
        yield client
    finally:
        await client.close()


async def stream_of(js: JetStreamContext, count: int, subject: str = "in") -> str:
    """A fresh limits stream holding ``count`` messages (sequences 1 to ``count``)."""
    stream = unique("addr")
    await js.add_stream(name=stream, subjects=[f"{stream}.>"])
    for i in range(count):
        await js.publish(f"{stream}.{subject}", payload(i))
    return stream


async def state(js: JetStreamContext, stream: str) -> tuple[int, int, int, int]:
    """The stream's (messages, num_deleted, first_seq, last_seq)."""
    s = (await js.stream_info(stream)).state
    return s.messages, s.num_deleted or 0, s.first_seq, s.last_seq


async def stored(js: JetStreamContext, stream: str) -> list[int]:
    return [entry.seq for entry in await stream_entries(js, stream) if entry.seq is not None]


class Requests:
    """The stream-message deletion requests the server routes, seen by a core subscriber."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.subjects: list[str] = []

    async def start(self) -> Requests:
        async def seen(msg: Msg) -> None:
            self.subjects.append(msg.subject)

        await self.client.subscribe("$JS.API.STREAM.MSG.DELETE.>", cb=seen)
        await subscribed(self.client)
        return self

    async def sent(self) -> list[str]:
        """What was routed so far: the server queued each copy before it answered the request,
        so a round trip of this connection brings every one of them."""
        await subscribed(self.client)
        return self.subjects


async def add_consumer(js: JetStreamContext, stream: str, name: str, **config: Any) -> None:
    await js.add_consumer(
        stream, ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, **config)
    )


async def acknowledge(js: JetStreamContext, stream: str, consumer: str, count: int) -> None:
    sub = await js.pull_subscribe_bind(consumer, stream)
    for message in await sub.fetch(count, timeout=5):
        await message.ack_sync()
    await sub.unsubscribe()


# -- JetStream ----------------------------------------------------------------------------------
@pytest.mark.parametrize("erase", [False, True], ids=["no_erase", "erase"])
async def test_sequences_are_deleted_through_a_url_and_their_neighbours_stay(
    nats_server: Any, erase: bool
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 5)
        requests = await Requests(client).start()
        results = await msgdel.delete_at(
            nats_server.url,
            [JetStreamSequence(stream, 2), JetStreamSequence(stream, 4)],
            adapter=JetStreamAdapter(erase=erase),
        )
        assert results == [
            msgdel.DeleteResult("nats", stream, ("2",), Semantics.EXACT, Outcome.DELETED, 1),
            msgdel.DeleteResult("nats", stream, ("4",), Semantics.EXACT, Outcome.DELETED, 1),
        ]
        assert await state(js, stream) == (3, 2, 1, 5)
        assert await stored(js, stream) == [1, 3, 5]
        assert len(await requests.sent()) == 2


async def test_a_sequence_is_deleted_on_a_connected_client_which_stays_open(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 3)
        (result,) = await msgdel.delete_at(client, [JetStreamSequence.parse(f"{stream}:1")])
        assert (result.target, result.ids, result.outcome) == (stream, ("1",), Outcome.DELETED)
        assert client.is_connected
        assert await state(js, stream) == (2, 0, 2, 3)  # the first went: the stream starts at 2


async def test_an_absent_sequence_is_already_gone_and_the_stream_is_unchanged(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 4)
        await js.delete_msg(stream, 2)
        before = await state(js, stream)
        results = await msgdel.delete_at(
            nats_server.url, [JetStreamSequence(stream, 2), JetStreamSequence(stream, 99)]
        )
        assert [(r.outcome, r.removed) for r in results] == [(Outcome.ALREADY_GONE, 0)] * 2
        assert await state(js, stream) == before == (3, 1, 1, 4)


async def test_an_unknown_stream_is_not_deletable_and_nothing_is_sent_for_it(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 2)
        missing = unique("nosuch")
        requests = await Requests(client).start()
        outcomes = await msgdel.delete_at(
            nats_server.url,
            [JetStreamSequence(missing, 1), JetStreamSequence(stream, 1)],
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], NotDeletable)
        assert missing in str(outcomes[0])
        assert isinstance(outcomes[1], msgdel.DeleteResult)
        assert outcomes[1].outcome is Outcome.DELETED  # the other stream's address still goes
        assert await requests.sent() == [f"$JS.API.STREAM.MSG.DELETE.{stream}"]
        with pytest.raises(NotDeletable, match=missing):
            await msgdel.delete_at(client, [JetStreamSequence(missing, 1)])


async def test_a_sequence_any_consumer_has_not_acknowledged_is_deferred_until_it_has(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 3)
        await add_consumer(js, stream, "billing")
        first, second = await msgdel.delete_at(
            client, [JetStreamSequence(stream, 1), JetStreamSequence(stream, 2)]
        )
        assert [(r.outcome, r.removed) for r in (first, second)] == [(Outcome.DEFERRED, 0)] * 2
        assert await stored(js, stream) == [1, 2, 3]

        await acknowledge(js, stream, "billing", 1)
        first, second = await msgdel.delete_at(
            client, [JetStreamSequence(stream, 1), JetStreamSequence(stream, 2)]
        )
        assert (first.outcome, second.outcome) == (Outcome.DELETED, Outcome.DEFERRED)
        assert await stored(js, stream) == [2, 3]


async def test_a_sequence_past_a_consumer_whose_filter_does_not_match_it_is_deleted(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 2)
        await add_consumer(js, stream, "elsewhere", filter_subject=f"{stream}.other")
        await js.delete_msg(stream, 2)
        present, absent = await msgdel.delete_at(
            client, [JetStreamSequence(stream, 1), JetStreamSequence(stream, 2)]
        )
        assert (present.outcome, present.removed) == (Outcome.DELETED, 1)
        assert (absent.outcome, absent.removed) == (Outcome.ALREADY_GONE, 0)
        assert await state(js, stream) == (0, 0, 3, 2)  # empty


async def test_ignore_other_consumers_deletes_what_a_consumer_still_needs(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 2)
        await add_consumer(js, stream, "billing")
        (result,) = await msgdel.delete_at(
            nats_server.url,
            [JetStreamSequence(stream, 1)],
            adapter=JetStreamAdapter(ignore_other_consumers=True),
        )
        assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
        assert await stored(js, stream) == [2]


async def test_a_dry_run_sends_nothing_and_leaves_the_stream_as_it_was(nats_server: Any) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        stream = await stream_of(js, 3)
        requests = await Requests(client).start()
        results = await msgdel.delete_at(
            nats_server.url, [JetStreamSequence(stream, 1), JetStreamSequence(stream, 3)],
            dry_run=True,
        )  # fmt: skip
        assert [(r.ids, r.outcome) for r in results] == [
            (("1",), Outcome.SKIPPED),
            (("3",), Outcome.SKIPPED),
        ]
        assert await state(js, stream) == (3, 0, 1, 3)
        assert await requests.sent() == []


async def test_an_unreachable_server_fails_retryably_without_the_password_in_the_error() -> None:
    url = f"nats://deleter:{PASSWORD}@127.0.0.1:{free_port()}"
    with pytest.raises(DeletionFailed) as caught:
        await msgdel.delete_at(url, [JetStreamSequence("orders", 1)])
    assert caught.value.retryable
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


class GuardedNats(NatsServer):
    """A nats-server of one test that takes only the user ``deleter`` with :data:`PASSWORD`."""

    def command(self) -> Sequence[str]:
        return [*super().command(), "--user", "deleter", "--pass", PASSWORD]

    def credentials(self, password: str) -> str:
        return self.url.replace("nats://", f"nats://deleter:{password}@")


@pytest.fixture
def guarded_nats(tmp_path: Path) -> Iterator[GuardedNats]:
    server = GuardedNats(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_the_urls_credentials_are_used_and_refused_ones_fail_for_good(
    guarded_nats: GuardedNats,
) -> None:
    client = await nats.connect(guarded_nats.credentials(PASSWORD))
    try:
        js = client.jetstream()
        stream = await stream_of(js, 2)
        (result,) = await msgdel.delete_at(
            guarded_nats.credentials(PASSWORD), [JetStreamSequence(stream, 1)]
        )
        assert result.outcome is Outcome.DELETED
        wrong = "not-the-pa55word"
        with pytest.raises(DeletionFailed) as caught:
            await msgdel.delete_at(guarded_nats.credentials(wrong), [JetStreamSequence(stream, 2)])
        assert caught.value.retryable is False  # the same credentials cannot succeed later
        assert wrong not in str(caught.value)
        assert wrong not in repr(caught.value)
        assert await stored(js, stream) == [2]
    finally:
        await client.close()


async def test_a_connection_msgdel_opened_that_closed_fails_retryably(nats_server: Any) -> None:
    adapter = JetStreamAdapter()
    async with adapter.connect(nats_server.url) as client:
        await client.close()
        (outcome,) = await adapter.delete_at(client, [JetStreamSequence("orders", 1)])
    assert isinstance(outcome, DeletionFailed)
    assert outcome.retryable


async def test_a_client_of_another_library_is_refused_naming_the_client_expected() -> None:
    with pytest.raises(UnsupportedDeletion, match=r"nats\.aio\.client\.Client"):
        await msgdel.delete_at(object(), [JetStreamSequence("orders", 1)])


# -- KV -----------------------------------------------------------------------------------------
async def bucket_of(js: JetStreamContext, **values: bytes) -> str:
    bucket = unique("kvaddr")
    kv = await js.create_key_value(bucket=bucket, history=5)
    for key, value in values.items():
        await kv.put(key, value)
    return bucket


async def history(js: JetStreamContext, bucket: str, key: str) -> list[str]:
    """The operations of ``key``'s history, oldest first (``PUT`` for a value)."""
    entries = await (await js.key_value(bucket)).history(key)
    return [str(entry.operation or "PUT") for entry in entries]


async def test_a_kv_key_is_deleted_with_a_marker_its_history_kept_its_neighbour_untouched(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        bucket = await bucket_of(js, a=b"1", b=b"2")
        await (await js.key_value(bucket)).put("a", b"1 again")
        (result,) = await msgdel.delete_at(nats_server.url, [KvKey(bucket, "a")])
        assert result == msgdel.DeleteResult(
            "nats", bucket, ("a",), Semantics.EXACT, Outcome.DELETED, 1
        )
        kv = await js.key_value(bucket)
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get("a")
        assert await history(js, bucket, "a") == ["PUT", "PUT", "DEL"]
        assert (await kv.get("b")).value == b"2"


async def test_kv_purge_rolls_the_keys_history_up(nats_server: Any) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        bucket = await bucket_of(js, a=b"1", b=b"2")
        await (await js.key_value(bucket)).put("a", b"1 again")
        (result,) = await msgdel.delete_at(
            client, [KvKey(bucket, "a")], adapter=KeyValueAdapter(purge=True)
        )
        assert (result.outcome, result.removed) == (Outcome.DELETED, 1)
        assert await history(js, bucket, "a") == ["PURGE"]
        assert await history(js, bucket, "b") == ["PUT"]


async def test_a_missing_or_deleted_kv_key_is_already_gone_and_nothing_is_written(
    nats_server: Any,
) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        bucket = await bucket_of(js, a=b"1")
        await (await js.key_value(bucket)).delete("a")
        results = await msgdel.delete_at(client, [KvKey(bucket, "a"), KvKey(bucket, "never")])
        assert [(r.outcome, r.removed) for r in results] == [(Outcome.ALREADY_GONE, 0)] * 2
        assert await history(js, bucket, "a") == ["PUT", "DEL"]  # no second marker


async def test_an_unknown_bucket_is_not_deletable_naming_it(nats_server: Any) -> None:
    missing = unique("nobucket")
    with pytest.raises(NotDeletable, match=missing):
        await msgdel.delete_at(nats_server.url, [KvKey(missing, "a")])
    async with reader(nats_server) as client:
        with pytest.raises(nats.js.errors.BucketNotFoundError):
            await client.jetstream().key_value(missing)  # and none was made


async def test_a_kv_dry_run_leaves_the_key(nats_server: Any) -> None:
    async with reader(nats_server) as client:
        js = client.jetstream()
        bucket = await bucket_of(js, a=b"1")
        (result,) = await msgdel.delete_at(nats_server.url, [KvKey(bucket, "a")], dry_run=True)
        assert result.outcome is Outcome.SKIPPED
        assert await history(js, bucket, "a") == ["PUT"]
