"""DeleteMiddleware with a Batcher opens no redelivery window on a JetStream consumer.

A JetStream consumer redelivers a message that is not acknowledged within its ``ack_wait``.
A batched deletion waits up to the Batcher's ``max_delay``; were the acknowledgement left to
the batch, a ``max_delay`` longer than ``ack_wait`` would have the server hand every message
out again before the batch deletes it. FastStream acknowledges each message when its handler
returns, and the batch only deletes (``leave_ack_to_batch`` changes nothing here: deleting a
stream message acknowledges no delivery).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from faststream.nats import JStream, PullSub
from nats.js.api import ConsumerConfig

import msgdel
from msgdel.faststream import DeleteMiddleware
from tests.eventually import eventually
from tests.nats.harness import WAIT, JetStreamHarness, Message

ACK_WAIT = 1.0
"""Seconds the consumer waits for an acknowledgement before it redelivers."""
MAX_DELAY = 3 * ACK_WAIT
"""Seconds the Batcher holds its first deletion: the batch waits through ack_wait twice."""
COUNT = 20


@pytest.mark.parametrize("pull", [False, True], ids=["push", "pull"])
async def test_a_batch_waiting_longer_than_ack_wait_handles_each_message_once_and_deletes_it(
    nats_server: Any, pull: bool
) -> None:
    async with JetStreamHarness(nats_server) as harness:
        stream, _ = await harness.create(COUNT)
        batcher = msgdel.Batcher(harness.registry, max_delay=MAX_DELAY)
        broker = harness.broker(middlewares=[DeleteMiddleware(batcher=batcher)])
        delivery: dict[str, Any] = (
            {"pull_sub": PullSub(batch_size=10, timeout=1), "durable": stream}
            if pull
            else {"queue": stream}  # a push consumer named by its deliver group
        )
        handled: Counter[int] = Counter()
        all_handled = asyncio.Event()

        @broker.subscriber(
            harness.subject(stream),
            stream=JStream(stream, declare=False),
            config=ConsumerConfig(ack_wait=ACK_WAIT),
            **delivery,
        )
        async def handle(message: Message) -> None:
            handled[message.raw_message.metadata.sequence.stream] += 1
            if len(handled) == COUNT:
                all_handled.set()

        async def stored_count() -> int:
            return int((await harness.js.stream_info(stream)).state.messages)

        try:
            async with broker:
                await broker.start()
                await asyncio.wait_for(all_handled.wait(), WAIT)
                assert await stored_count() == COUNT  # every deletion waits in the batch
                # the batch is sent after MAX_DELAY, past two ack_waits, while the app runs
                assert await eventually(stored_count, 0, within=WAIT) == 0
                consumer = await harness.js.consumer_info(stream, stream)
        finally:
            await batcher.close()
            await harness.registry.aclose()

        assert sorted(handled) == list(range(1, COUNT + 1))
        assert set(handled.values()) == {1}
        assert (consumer.num_redelivered, consumer.num_ack_pending) == (0, 0)
        assert await harness.stored(stream) == []
