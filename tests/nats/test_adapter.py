"""NATS adapters against the test bed's nats-server: the stream's own state tells what happened."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import nats
import nats.js.errors
import pytest
from faststream import Context
from faststream.nats import JStream, KvWatch, NatsBroker, ObjWatch, PullSub, TestNatsBroker
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.client import JetStreamContext

import msgdel
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter, ObjectStoreAdapter
from tests.eventually import eventually
from tests.testbed.nats import NatsServer

pytestmark = pytest.mark.nats

Message = Annotated[Any, Context("message")]


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def js(nats_server: Any) -> AsyncIterator[JetStreamContext]:
    """A separate nats-py connection for reading the server's state."""
    nc = await nats.connect(nats_server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


@asynccontextmanager
async def consumed(
    url: str,
    subject: str,
    payloads: list[str],
    *,
    expect: int | None = None,
    on_message: Callable[[Any], Any] | None = None,
    js_options: dict[str, Any] | None = None,
    **subscriber: Any,
) -> AsyncIterator[tuple[NatsBroker, list[Any]]]:
    """Publish ``payloads``, consume them with FastStream, yield the broker and messages."""
    broker = NatsBroker(url, js_options=js_options)
    got: list[Any] = []
    done = asyncio.Event()
    expected = len(payloads) if expect is None else expect

    @broker.subscriber(subject, **subscriber)
    async def handle(message: Message) -> None:
        got.append(message)
        if on_message is not None:
            await on_message(message)
        if len(got) >= expected:
            done.set()

    async with broker:
        await broker.start()
        stream = subscriber.get("stream")
        for body in payloads:
            await broker.publish(body, subject, stream=stream.name if stream else None)
        await asyncio.wait_for(done.wait(), 10)
        yield broker, got


async def _state(js: JetStreamContext, stream: str) -> tuple[int, int]:
    """(messages, num_deleted) of the stream, from the server."""
    info = await js.stream_info(stream)
    return int(info.state.messages), int(info.state.num_deleted or 0)


async def _exists(js: JetStreamContext, stream: str, seq: int) -> bool:
    try:
        await js.get_msg(stream, seq)
    except nats.js.errors.NotFoundError:
        return False
    return True


# -- JetStream ----------------------------------------------------------------------------------
async def test_delete_removes_exactly_the_consumed_message_and_keeps_its_neighbours(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("exact")
    payloads = [f"m{i}" for i in range(5)]
    async with consumed(nats_server.url, f"{stream}.in", payloads, stream=JStream(stream)) as (
        _,
        got,
    ):
        third = next(m for m in got if m.body == b"m2")
        result = await msgdel.delete(third)

    assert result == msgdel.DeleteResult(
        "nats", stream, ["3"], msgdel.Semantics.EXACT, msgdel.Outcome.DELETED, 1
    )
    assert await _state(js, stream) == (4, 1)
    assert not await _exists(js, stream, 3)
    assert [await _exists(js, stream, s) for s in (1, 2, 4, 5)] == [True] * 4


@pytest.mark.parametrize("erase", [False, True], ids=["no_erase", "erase"])
async def test_deleting_a_deleted_message_again_is_already_gone(
    nats_server: Any, js: JetStreamContext, erase: bool
) -> None:
    stream = _name("twice")
    adapter = JetStreamAdapter(erase=erase)
    async with consumed(nats_server.url, f"{stream}.in", ["a", "b"], stream=JStream(stream)) as (
        _,
        got,
    ):
        first = await adapter.delete(got[0])
        again = await adapter.delete(got[0])

    assert first.outcome is msgdel.Outcome.DELETED
    assert again.outcome is msgdel.Outcome.ALREADY_GONE
    assert again.removed == 0
    assert (await _state(js, stream))[0] == 1
    assert not await _exists(js, stream, 1)


def _block_bytes(server: Any, stream: str) -> bytes:
    files = Path(server.store_dir).glob(f"**/streams/{stream}/msgs/*.blk")
    return b"".join(p.read_bytes() for p in files)


@pytest.mark.parametrize(
    ("erase", "payload_left_on_disk"), [(False, True), (True, False)], ids=["no_erase", "erase"]
)
async def test_only_erase_overwrites_the_payload_in_the_stream_files(
    nats_server: Any, js: JetStreamContext, erase: bool, payload_left_on_disk: bool
) -> None:
    stream = _name("erase")
    secret = f"secret-{uuid.uuid4().hex}"
    async with consumed(
        nats_server.url, f"{stream}.in", [secret, "neighbour"], stream=JStream(stream)
    ) as (_, got):
        result = await JetStreamAdapter(erase=erase).delete(got[0])
        # the server writes its block files asynchronously; wait until the neighbour is there
        assert await eventually(lambda: b"neighbour" in _block_bytes(nats_server, stream), True)

    assert result.outcome is msgdel.Outcome.DELETED
    assert not await _exists(js, stream, 1)
    assert (secret.encode() in _block_bytes(nats_server, stream)) is payload_left_on_disk


async def test_a_work_queue_message_already_removed_by_its_ack_is_already_gone(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("wq")
    config = JStream(stream, retention=RetentionPolicy.WORK_QUEUE)
    async with consumed(nats_server.url, f"{stream}.in", ["job"], stream=config) as (_, got):
        # FastStream acks (removing the work-queue message) after the handler returns
        assert await eventually(lambda: _state(js, stream), (0, 0)) == (0, 0)
        result = await msgdel.delete(got[0])

    assert result.outcome is msgdel.Outcome.ALREADY_GONE
    assert await _state(js, stream) == (0, 0)


async def test_a_deny_delete_stream_refuses_and_keeps_the_message(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("deny")
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"], deny_delete=True))
    sub = JStream(stream, declare=False)
    async with consumed(nats_server.url, f"{stream}.in", ["keep"], stream=sub) as (_, got):
        with pytest.raises(msgdel.UnsupportedDeletion, match="deny_delete"):
            await msgdel.delete(got[0])

    assert await _state(js, stream) == (1, 0)


async def test_delete_many_deletes_every_given_message_in_input_order(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("many")
    payloads = [f"m{i}" for i in range(40)]
    adapter = JetStreamAdapter(concurrency=8)
    async with consumed(nats_server.url, f"{stream}.in", payloads, stream=JStream(stream)) as (
        _,
        got,
    ):
        chosen = [m for m in got if int(m.body[1:]) % 2 == 0][::-1]
        results = await adapter.delete_many(chosen)

    assert [r.ids for r in results] == [(str(int(m.body[1:]) + 1),) for m in chosen]
    assert {r.outcome for r in results} == {msgdel.Outcome.DELETED}
    assert (await _state(js, stream))[0] == 20
    assert [await _exists(js, stream, s) for s in (1, 2, 39, 40)] == [False, True, False, True]


async def test_a_batch_message_deletes_all_its_stream_messages(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("batch")
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"]))
    for body in (b"a", b"b", b"c", b"d"):
        await js.publish(f"{stream}.in", body)
    async with consumed(
        nats_server.url,
        f"{stream}.in",
        [],
        expect=1,
        stream=JStream(stream, declare=False),
        pull_sub=PullSub(batch_size=3, batch=True, timeout=0.5),
        durable=f"{stream}-d",
    ) as (_, got):
        result = await msgdel.delete(got[0])

    assert result.ids == ("1", "2", "3")
    assert (result.outcome, result.removed) == (msgdel.Outcome.DELETED, 3)
    assert (await _state(js, stream))[0] == 1
    assert await _exists(js, stream, 4)


async def test_a_core_nats_message_was_never_stored(nats_server: Any) -> None:
    subject = _name("core")
    async with consumed(nats_server.url, subject, ["x"]) as (_, got):
        result = await msgdel.delete(got[0])

    assert result.semantics is msgdel.Semantics.NOT_STORED
    assert result.outcome is msgdel.Outcome.NOTHING_STORED
    assert (result.broker, result.target, result.ids) == ("nats", subject, ())


async def test_deleting_after_the_connection_closed_fails_without_retry(
    nats_server: Any, js: JetStreamContext
) -> None:
    stream = _name("closed")
    async with consumed(nats_server.url, f"{stream}.in", ["x"], stream=JStream(stream)) as (
        _,
        got,
    ):
        pass
    with pytest.raises(msgdel.DeletionFailed, match="connection is closed") as caught:
        await msgdel.delete(got[0])
    assert caught.value.retryable is False
    assert await _state(js, stream) == (1, 0)


DOMAIN = "hub"


@pytest.fixture(scope="module")
def domain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A second nats-server whose JetStream lives in the domain ``hub``."""
    server = NatsServer(tmp_path_factory.mktemp("nats-domain"), domain=DOMAIN)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "adapter",
    [JetStreamAdapter(), JetStreamAdapter(api_prefix=f"$JS.{DOMAIN}.API")],
    ids=["default", "domain_prefix"],
)
async def test_a_message_consumed_through_a_jetstream_domain_is_deleted_exactly(
    domain_server: NatsServer, adapter: JetStreamAdapter
) -> None:
    stream = _name("domain")
    async with consumed(
        domain_server.url,
        f"{stream}.in",
        ["a", "b", "c"],
        js_options={"domain": DOMAIN},
        stream=JStream(stream),
    ) as (_, got):
        middle = next(m for m in got if m.body == b"b")
        result = await adapter.delete(middle)

    assert result == msgdel.DeleteResult(
        "nats", stream, ["2"], msgdel.Semantics.EXACT, msgdel.Outcome.DELETED, 1
    )
    nc = await nats.connect(domain_server.url)
    try:
        js = nc.jetstream(domain=DOMAIN)
        assert await _state(js, stream) == (2, 1)
        assert [await _exists(js, stream, s) for s in (1, 2, 3)] == [True, False, True]
    finally:
        await nc.close()


async def test_an_api_prefix_naming_another_domain_fails_retryably_and_keeps_the_message(
    domain_server: NatsServer,
) -> None:
    stream = _name("elsewhere")
    adapter = JetStreamAdapter(api_prefix="$JS.elsewhere.API", timeout=0.5)
    async with consumed(
        domain_server.url,
        f"{stream}.in",
        ["x"],
        js_options={"domain": DOMAIN},
        stream=JStream(stream),
    ) as (_, got):
        with pytest.raises(msgdel.DeletionFailed, match="domain") as caught:
            await adapter.delete(got[0])

    assert caught.value.retryable is True
    nc = await nats.connect(domain_server.url)
    try:
        assert await _state(nc.jetstream(domain=DOMAIN), stream) == (1, 0)
    finally:
        await nc.close()


async def test_the_in_memory_test_broker_skips_and_sends_nothing() -> None:
    broker = NatsBroker()
    got: list[Any] = []

    @broker.subscriber("t.in", stream=JStream("t"))
    async def handle(message: Message) -> None:
        got.append(await msgdel.delete(message))

    async with TestNatsBroker(broker) as br:
        await br.publish("x", "t.in")

    assert [r.outcome for r in got] == [msgdel.Outcome.SKIPPED]


# -- key-value ----------------------------------------------------------------------------------
async def _kv_consumed(
    url: str, bucket: str, key: str, adapter: Any, js: JetStreamContext
) -> list[Any]:
    """Put ``key``, delete it from inside the watching handler with ``adapter``; the results."""
    kv = await js.create_key_value(bucket=bucket, history=5)
    await kv.put(key, b"v1")
    results: list[Any] = []

    async def delete(message: Any) -> None:
        results.append(await adapter.delete(message))

    async with consumed(
        url, key, [], expect=2, kv_watch=KvWatch(bucket, declare=False), on_message=delete
    ):
        pass
    return results


async def kv_history(js: JetStreamContext, bucket: str) -> list[str | None]:
    """The KV-Operation header (None for a put) of every entry the bucket's stream still holds.

    Read message by message from the stream: nats-py's ``kv.history`` can end its watch
    before the first entry arrives and then reports no keys at all.
    """
    stream = f"KV_{bucket}"
    state = (await js.stream_info(stream)).state
    operations: list[str | None] = []
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            msg = await js.get_msg(stream, seq)
        except nats.js.errors.NotFoundError:
            continue  # removed by a purge
        operations.append((msg.headers or {}).get("KV-Operation"))
    return operations


async def test_kv_delete_marks_the_key_deleted_and_keeps_its_history(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("kv")
    results = await _kv_consumed(nats_server.url, bucket, "k", KeyValueAdapter(), js)

    # the watcher saw its own delete marker as a second entry, and did not loop on it
    assert [r.outcome for r in results] == [msgdel.Outcome.DELETED, msgdel.Outcome.ALREADY_GONE]
    assert (results[0].target, results[0].ids) == (bucket, ("k",))
    kv = await js.key_value(bucket)
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")
    assert await kv_history(js, bucket) == [None, "DEL"]


async def test_kv_purge_removes_the_history_too(nats_server: Any, js: JetStreamContext) -> None:
    bucket = _name("kvp")
    results = await _kv_consumed(nats_server.url, bucket, "k", KeyValueAdapter(purge=True), js)

    assert results[0].outcome is msgdel.Outcome.DELETED
    assert await kv_history(js, bucket) == ["PURGE"]


async def test_kv_keeps_a_newer_value_written_after_the_consumed_one(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("kvn")
    kv = await js.create_key_value(bucket=bucket, history=5)
    await kv.put("k", b"old")
    errors: list[BaseException] = []

    async def delete_late(message: Any) -> None:
        if message.raw_message.value != b"old":
            return
        await kv.put("k", b"new")
        try:
            await msgdel.delete(message)
        except msgdel.NotDeletable as exc:
            errors.append(exc)

    async with consumed(
        nats_server.url,
        "k",
        [],
        expect=1,
        kv_watch=KvWatch(bucket, declare=False),
        on_message=delete_late,
    ):
        pass

    assert len(errors) == 1
    assert "newer value was kept" in str(errors[0])
    assert (await kv.get("k")).value == b"new"


async def test_kv_adapter_given_the_broker_works_outside_handlers(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("kvb")
    kv = await js.create_key_value(bucket=bucket)
    await kv.put("k", b"v")
    async with consumed(
        nats_server.url, "k", [], expect=1, kv_watch=KvWatch(bucket, declare=False)
    ) as (broker, got):
        result = await KeyValueAdapter(broker).delete(got[0])

    assert result.outcome is msgdel.Outcome.DELETED
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get("k")


async def test_kv_adapter_without_a_broker_outside_handlers_says_how_to_register(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("kvx")
    kv = await js.create_key_value(bucket=bucket)
    await kv.put("k", b"v")
    async with consumed(
        nats_server.url, "k", [], expect=1, kv_watch=KvWatch(bucket, declare=False)
    ) as (_, got):
        pass
    with pytest.raises(msgdel.UnsupportedDeletion, match=r"msgdel\.register"):
        await KeyValueAdapter().delete(got[0])
    assert (await kv.get("k")).value == b"v"


# -- object store -------------------------------------------------------------------------------
async def test_object_delete_removes_the_object_and_its_chunks(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("obj")
    store = await js.create_object_store(bucket)
    await store.put("report.txt", b"x" * 300_000)
    await store.put("other.txt", b"y")
    results: list[Any] = []

    async def delete(message: Any) -> None:
        if message.raw_message.name == "report.txt":
            results.append(await msgdel.delete(message))

    async with consumed(
        nats_server.url, bucket, [], expect=3, obj_watch=ObjWatch(declare=False), on_message=delete
    ):
        pass

    assert [r.outcome for r in results] == [msgdel.Outcome.DELETED, msgdel.Outcome.ALREADY_GONE]
    assert (results[0].target, results[0].ids) == (bucket, ("report.txt",))
    with pytest.raises(nats.js.errors.NotFoundError):
        await store.get_info("report.txt")
    assert (await store.get("other.txt")).data == b"y"
    state = (await js.stream_info(f"OBJ_{bucket}")).state
    assert state.bytes < 100_000, "the chunks were purged"


async def test_object_replaced_by_a_newer_upload_is_kept(
    nats_server: Any, js: JetStreamContext
) -> None:
    bucket = _name("objn")
    store = await js.create_object_store(bucket)
    await store.put("a", b"old")
    errors: list[BaseException] = []

    async def delete_late(message: Any) -> None:
        if errors or message.raw_message.deleted:
            return
        await store.put("a", b"new")
        try:
            await msgdel.delete(message)
        except msgdel.NotDeletable as exc:
            errors.append(exc)

    async with consumed(
        nats_server.url,
        bucket,
        [],
        expect=1,
        obj_watch=ObjWatch(declare=False),
        on_message=delete_late,
    ):
        pass

    assert errors, "the newer upload was not deleted"
    assert (await store.get("a")).data == b"new"


def test_every_nats_adapter_declares_exact_semantics() -> None:
    for adapter in (JetStreamAdapter(), KeyValueAdapter(), ObjectStoreAdapter()):
        assert isinstance(adapter, msgdel.Deletable)
        assert adapter.semantics is msgdel.Semantics.EXACT
