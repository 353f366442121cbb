"""The docs' Kafka code runs as written against the test bed's Kafka (aiokafka)."""

from __future__ import annotations

import asyncio
from typing import Any

from faststream import Context
from faststream.kafka import KafkaBroker

import msgdel
from tests.docs_blocks import block, run
from tests.kafka.harness import Aiokafka
from tests.kafka_family import unique


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
