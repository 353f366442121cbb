"""What the NATS adapters do beyond the conformance kit: their options (erase, concurrency,
API prefix, purge, a connection), stream configurations (work queues, ``deny_delete``),
JetStream domains, and entries that changed after they were consumed. The server's own state
tells what happened (see :mod:`tests.nats.harness`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import RetentionPolicy

import msgdel
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter
from tests.eventually import eventually
from tests.nats.harness import (
    BucketHarness,
    JetStreamHarness,
    KeyValueHarness,
    ObjectStoreHarness,
    stream_entries,
)
from tests.testbed.nats import NatsServer


# -- JetStream ----------------------------------------------------------------------------------
def _block_bytes(server: Any, stream: str) -> bytes:
    files = Path(server.store_dir).glob(f"**/streams/{stream}/msgs/*.blk")
    return b"".join(p.read_bytes() for p in files)


@pytest.mark.parametrize(
    ("erase", "payload_left_on_disk"), [(False, True), (True, False)], ids=["no_erase", "erase"]
)
async def test_only_erase_overwrites_the_payload_in_the_stream_files(
    nats_server: Any, erase: bool, payload_left_on_disk: bool
) -> None:
    adapter = JetStreamAdapter(erase=erase)
    async with JetStreamHarness(nats_server, adapter=adapter) as harness:
        async with harness.consumed(2) as got:
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
            # the server writes its block files asynchronously; wait until the neighbour is there
            neighbour = got.messages[1].raw_message.data
            written = await eventually(
                lambda: neighbour in _block_bytes(nats_server, got.target), True
            )
        assert written
        assert result.outcome is msgdel.Outcome.DELETED
        assert await harness.stored(got.target) == list(got.ids[1])
        secret = got.messages[0].raw_message.data
        assert (secret in _block_bytes(nats_server, got.target)) is payload_left_on_disk


async def test_a_work_queue_message_already_removed_by_its_ack_is_already_gone(
    nats_server: Any,
) -> None:
    work_queue = {"retention": RetentionPolicy.WORK_QUEUE}
    async with JetStreamHarness(nats_server, stream=work_queue) as harness:
        async with harness.consumed(1) as got:
            await got.messages[0].ack()  # the ack removes a work-queue message
            assert await eventually(lambda: harness.stored(got.target), []) == []
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
            sent = await harness.requests(got.target)
        assert (result.outcome, result.removed) == (msgdel.Outcome.ALREADY_GONE, 0)
        assert sent == 1


async def test_a_deny_delete_stream_refuses_and_keeps_the_message(nats_server: Any) -> None:
    async with JetStreamHarness(nats_server, stream={"deny_delete": True}) as harness:
        async with harness.consumed(1) as got:
            with pytest.raises(msgdel.UnsupportedDeletion, match="deny_delete"):
                await msgdel.delete(got.messages[0], registry=harness.registry)
        assert await harness.stored(got.target) == list(got.ids[0])


async def test_delete_many_beyond_its_concurrency_deletes_every_given_message_in_input_order(
    nats_server: Any,
) -> None:
    async with JetStreamHarness(nats_server, adapter=JetStreamAdapter(concurrency=8)) as harness:
        async with harness.consumed(40) as got:
            chosen = list(range(0, 40, 2))[::-1]
            results = await msgdel.delete_many(
                [got.messages[i] for i in chosen], registry=harness.registry
            )
        assert [r.ids for r in results] == [got.ids[i] for i in chosen]
        assert {r.outcome for r in results} == {msgdel.Outcome.DELETED}
        assert await harness.stored(got.target) == [got.ids[i][0] for i in range(1, 40, 2)]


async def test_deleting_after_the_connection_closed_fails_without_retry(nats_server: Any) -> None:
    async with JetStreamHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            pass
        with pytest.raises(msgdel.DeletionFailed, match="connection is closed") as caught:
            await msgdel.delete(got.messages[0], registry=harness.registry)
        assert caught.value.retryable is False
        assert await harness.stored(got.target) == list(got.ids[0])


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


@pytest.fixture
async def in_domain(domain_server: NatsServer) -> AsyncIterator[JetStreamHarness]:
    async with JetStreamHarness(domain_server, domain=DOMAIN) as harness:
        yield harness


@pytest.mark.parametrize(
    "adapter",
    [JetStreamAdapter(), JetStreamAdapter(api_prefix=f"$JS.{DOMAIN}.API")],
    ids=["default", "domain_prefix"],
)
async def test_a_message_consumed_through_a_jetstream_domain_is_deleted_exactly(
    in_domain: JetStreamHarness, adapter: JetStreamAdapter
) -> None:
    async with in_domain.consumed(3) as got:
        result = await adapter.delete(got.messages[1])

    assert result == msgdel.DeleteResult(
        "nats", got.target, got.ids[1], msgdel.Semantics.EXACT, msgdel.Outcome.DELETED, 1
    )
    assert await in_domain.stored(got.target) == [*got.ids[0], *got.ids[2]]


async def test_an_api_prefix_naming_another_domain_fails_retryably_and_keeps_the_message(
    in_domain: JetStreamHarness,
) -> None:
    adapter = JetStreamAdapter(api_prefix="$JS.elsewhere.API", timeout=0.5)
    async with in_domain.consumed(1) as got:
        with pytest.raises(msgdel.DeletionFailed, match="domain") as caught:
            await adapter.delete(got.messages[0])

    assert caught.value.retryable is True
    assert await in_domain.stored(got.target) == list(got.ids[0])


# -- key-value ----------------------------------------------------------------------------------
async def kv_history(harness: KeyValueHarness, bucket: str) -> list[str | None]:
    """The KV-Operation header (None for a put) of every entry the bucket's stream still holds."""
    entries = await stream_entries(harness.js, f"KV_{bucket}")
    return [(entry.headers or {}).get("KV-Operation") for entry in entries]


async def test_kv_delete_writes_a_delete_marker_and_keeps_the_history(nats_server: Any) -> None:
    async with KeyValueHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert result.outcome is msgdel.Outcome.DELETED
        assert await kv_history(harness, got.target) == [None, "DEL"]


async def test_kv_purge_removes_the_history_too(nats_server: Any) -> None:
    async with KeyValueHarness(nats_server, purge=True) as harness:
        async with harness.consumed(1) as got:
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert result.outcome is msgdel.Outcome.DELETED
        assert await kv_history(harness, got.target) == ["PURGE"]


async def test_the_watchers_own_delete_marker_is_already_gone_and_sends_nothing(
    nats_server: Any,
) -> None:
    async with KeyValueHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            await msgdel.delete(got.messages[0], registry=harness.registry)
            assert await eventually(lambda: len(harness.deliveries), 2) == 2
            sent = await harness.requests(got.target)
            marker = await msgdel.delete(harness.deliveries[1], registry=harness.registry)
            assert await harness.requests(got.target) == sent == 1
        assert harness.deliveries[1].raw_message.operation == "DEL"
        assert (marker.outcome, marker.ids) == (msgdel.Outcome.ALREADY_GONE, got.ids[0])


async def test_kv_adapter_given_the_faststream_broker_works_outside_handlers(
    nats_server: Any,
) -> None:
    async with KeyValueHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            result = await KeyValueAdapter(harness.consumer).delete(got.messages[0])
        assert result.outcome is msgdel.Outcome.DELETED
        assert await harness.stored(got.target) == []


async def test_kv_adapter_without_a_broker_outside_handlers_says_how_to_register(
    nats_server: Any,
) -> None:
    async with KeyValueHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            with pytest.raises(msgdel.UnsupportedDeletion, match=r"msgdel\.register"):
                await KeyValueAdapter().delete(got.messages[0])
        assert await harness.stored(got.target) == list(got.ids[0])


# -- object store -------------------------------------------------------------------------------
async def test_object_delete_purges_the_objects_chunks(nats_server: Any) -> None:
    async with ObjectStoreHarness(nats_server, size=300_000) as harness:  # 3 chunks each
        async with harness.consumed(2) as got:
            await msgdel.delete(got.messages[0], registry=harness.registry)
        state = (await harness.js.stream_info(f"OBJ_{got.target}")).state
        assert 300_000 <= state.bytes < 400_000, "only the other object's chunks are left"
        assert len(await harness.read(got.target, got.ids[1][0])) == 300_000


@pytest.mark.parametrize(
    ("make", "refusal"),
    [(KeyValueHarness, "newer value was kept"), (ObjectStoreHarness, "newer upload")],
    ids=["kv", "object"],
)
async def test_an_entry_written_again_after_it_was_consumed_is_kept(
    nats_server: Any, make: type[BucketHarness], refusal: str
) -> None:
    async with make(nats_server) as harness:
        async with harness.consumed(1) as got:
            name = got.ids[0][0]
            await harness.write(got.target, name, b"new")
            with pytest.raises(msgdel.NotDeletable, match=refusal):
                await msgdel.delete(got.messages[0], registry=harness.registry)
        assert await harness.read(got.target, name) == b"new"
