"""The docs' Kafka code runs as written against the test bed's Kafka (aiokafka)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from faststream import Context
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

import msgdel
from tests.default_registry import fresh_default_registry
from tests.docs_blocks import block, example, printed, run
from tests.kafka.harness import Aiokafka
from tests.kafka_family import unique

ORDERS = "orders"
"""The topic docs/examples/kafka_truncate.py publishes to, deleted after its spec."""


@pytest.fixture
async def kafka(kafka_server: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The test bed's Kafka as ``KAFKA_BOOTSTRAP``; the example's topic is removed afterwards."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP", kafka_server.url)
    yield kafka_server
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.servers)
    await admin.start()
    try:
        await admin.delete_topics([ORDERS])
    finally:
        await admin.close()


async def test_requiring_exact_refuses_a_kafka_message_before_any_request(
    kafka_server: Any,
) -> None:
    """The contract's ``require=`` fragment, in a real handler: ``UnsupportedDeletion`` (a
    Kafka delete is PREFIX), and the partition still starts at offset 0."""
    fragment = block("docs/contract.md", "require=Semantics.EXACT)  # UnsupportedDeletion")
    client = Aiokafka()
    topic = unique("docs-require")
    await client.create_topic(kafka_server, topic)
    await client.produce(kafka_server, topic, [b"k0", b"k1"])
    broker = KafkaBroker(client.bootstrap(kafka_server), logger=None)
    raised: list[BaseException] = []
    done = asyncio.Event()

    @broker.subscriber(topic, auto_offset_reset="earliest")  # no group: no rebalance to wait for
    async def handle(body: bytes, message: Any = Context("message")) -> None:  # noqa: B008
        if message.raw_message.offset == 1:
            try:
                await run(fragment.code(), {"kafka_msg": message})
            except msgdel.MsgdelError as exc:
                raised.append(exc)
            finally:
                done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
    (refused,) = raised
    assert isinstance(refused, msgdel.UnsupportedDeletion)
    assert "PREFIX semantics, which does not meet require=EXACT" in str(refused)
    assert await client.log_range(kafka_server, topic) == (0, 2)


# -- docs/adapters/kafka.md ------------------------------------------------------------------
async def test_the_example_truncates_the_partition_up_to_each_order_it_handled(
    kafka: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each delete moves the log start one past the order just handled: removed 1 each."""
    with example("docs/examples/kafka_truncate.py") as program:
        await program.main()
    assert printed(capsys.readouterr().out) == [  # as its comment says, for each order
        f"Outcome.DELETED orders[0] ('{offset}',) 1" for offset in range(3)
    ]
    assert await Aiokafka().log_range(kafka, ORDERS) == (3, 3)  # log start = log end


async def test_the_tombstone_block_tombstones_a_keyed_record_on_a_compacted_topic(
    kafka_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Options block registers ``KafkaAdapter("tombstone")`` on the default registry; a
    handler's ``msgdel.delete`` then appends a null record with the key, and keeps the rest."""
    registry = fresh_default_registry(monkeypatch)
    await run(block("docs/adapters/kafka.md", 'KafkaAdapter("tombstone")').code(), {})
    adapter = registry.resolve(KafkaMessage)
    client = Aiokafka()
    topic = unique("docs-tombstone")
    await client.create_topic(kafka_server, topic, configs={"cleanup.policy": "compact"})
    await client.produce(kafka_server, topic, [b"k0", b"k1"])
    broker = KafkaBroker(client.bootstrap(kafka_server), logger=None)
    results: list[msgdel.DeleteResult] = []
    done = asyncio.Event()

    @broker.subscriber(topic, auto_offset_reset="earliest")  # no group: no rebalance to wait for
    async def handle(body: Any, message: Any = Context("message")) -> None:  # noqa: B008
        if message.raw_message.offset == 0:
            results.append(await msgdel.delete(message))
            done.set()

    try:
        async with broker:
            await broker.start()
            await asyncio.wait_for(done.wait(), 30)
    finally:
        await adapter.aclose()
    (result,) = results
    assert result.semantics is msgdel.Semantics.TOMBSTONE
    assert result.outcome is msgdel.Outcome.DEFERRED  # the broker removes offset 0 later
    assert (result.target, result.ids, result.removed) == (f"{topic}[0]", ("0",), 0)
    assert await client.read_all(kafka_server, topic) == [
        (0, b"k0", b"m0"),
        (1, b"k1", b"m1"),
        (2, b"k0", None),  # the tombstone
    ]
