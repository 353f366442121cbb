"""How ``JetStreamAdapter.delete_many`` plans and paces its requests: a message that is one
nats-py ``Msg`` (the common case, planned on a shorter path) gets exactly the outcome of a
batch holding that one ``Msg``, and neither sends a request when there is nothing to address;
once ``concurrency`` requests are unanswered, the next go out a fifth of the window at a time.

The messages are real deliveries of the test bed's nats-server on a core NATS subscription;
nats-server refuses a publish whose reply is a ``$JS.ACK`` subject, so the malformed ack
subjects are set on the delivered ``Msg`` afterwards. The connection's own counters say nothing
was sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from faststream.nats.message import NatsBatchMessage, NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from tests.eventually import eventually
from tests.nats.harness import WAIT, JetStreamHarness

REPLIES = {
    "core NATS": None,
    "an ack subject with a sequence that is no number": "$JS.ACK.orders.app.1.x.7.0.0",
    "an ack subject of a layout JetStream does not use": "$JS.ACK.orders.app.1",
}


@pytest.fixture
async def client(nats_server: Any) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_server.url)
    try:
        yield connection
    finally:
        await connection.close()


async def delivered(client: Client, reply: str | None) -> Msg:
    """A message the server delivered on a core NATS subscription, with ``reply``."""
    subscription = await client.subscribe("planning.orders")
    await client.publish("planning.orders", b"order")
    msg = await subscription.next_msg(timeout=WAIT)
    await subscription.unsubscribe()
    return msg if reply is None else dataclasses.replace(msg, reply=reply)


def outcome(result: object) -> tuple[object, ...]:
    """What a result or error says, without the message it came for."""
    if isinstance(result, msgdel.DeleteResult):
        return (result.semantics, result.outcome, result.ids, result.removed)
    return (type(result), str(result))


@pytest.mark.parametrize("reply", list(REPLIES.values()), ids=list(REPLIES))
async def test_a_message_alone_and_in_a_batch_of_one_get_the_same_outcome_and_send_nothing(
    client: Client, reply: str | None
) -> None:
    msg = await delivered(client, reply)
    adapter = JetStreamAdapter()
    sent = client.stats["out_msgs"]
    alone, batch = await adapter.delete_many(
        [NatsMessage(raw_message=msg, body=msg.data), NatsBatchMessage(raw_message=[msg], body=[])]
    )
    assert client.stats["out_msgs"] == sent  # no request of any kind
    assert outcome(alone) == outcome(batch)
    if reply is not None and reply.split(".")[5:6] == ["x"]:
        assert isinstance(alone, msgdel.NotDeletable)
        assert "names no stream sequence" in str(alone)
    else:  # never stored by JetStream
        assert isinstance(alone, msgdel.DeleteResult)
        assert alone.outcome is msgdel.Outcome.NOTHING_STORED


class HeldJetStream:
    """Answers JetStream API requests on ``held.API`` through the real ``$JS.API``: every
    request is carried out at once, its answer to a deletion held until ``answer(n)``."""

    prefix = "held.API"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.deletions = 0  # deletion requests received
        self.answers: list[tuple[str, bytes]] = []  # held, in the order they came

    async def __aenter__(self) -> HeldJetStream:
        self.subscription = await self.client.subscribe(f"{self.prefix}.>", cb=self.request)
        await self.client.flush()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.subscription.unsubscribe()

    async def request(self, msg: Msg) -> None:
        call = msg.subject.removeprefix(f"{self.prefix}.")
        reply = await self.client.request(f"$JS.API.{call}", msg.data, timeout=WAIT)
        if not call.startswith("STREAM.MSG.DELETE."):
            await self.client.publish(msg.reply, reply.data)
            return
        self.deletions += 1
        self.answers.append((msg.reply, reply.data))

    async def answer(self, count: int) -> None:
        """Send the first ``count`` answers held."""
        for subject, data in self.answers[:count]:
            await self.client.publish(subject, data)
        del self.answers[:count]
        await self.client.flush()


async def test_a_full_window_sends_again_once_a_fifth_of_it_is_answered(nats_server: Any) -> None:
    # concurrency 10: ten requests unanswered at most, and then two at a time
    adapter = JetStreamAdapter(api_prefix=HeldJetStream.prefix, concurrency=10, timeout=WAIT)
    async with JetStreamHarness(nats_server) as harness, harness.consumed(20) as got:
        async with HeldJetStream(harness.reader) as server:
            call = asyncio.ensure_future(adapter.delete_many(got.messages))
            assert await eventually(lambda: server.deletions, 10) == 10
            await server.answer(1)
            await asyncio.sleep(0.3)  # time enough for a request the answer would free
            assert server.deletions == 10, "one slot free of ten: nothing sent yet"
            await server.answer(1)
            assert await eventually(lambda: server.deletions, 12) == 12
            await asyncio.sleep(0.3)
            assert server.deletions == 12, "two slots free: two sent, not more"
            while not call.done():  # answer the rest as they come
                await server.answer(len(server.answers))
                await asyncio.sleep(0.02)
            results = await call
        assert [r.outcome for r in results if isinstance(r, msgdel.DeleteResult)] == [
            msgdel.Outcome.DELETED
        ] * 20, results
        assert server.deletions == 20, "one request per message"
        assert await harness.stored(got.target) == []
