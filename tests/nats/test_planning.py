"""How ``JetStreamAdapter.delete_many`` plans its requests: a message that is one nats-py
``Msg`` (the common case, planned on a shorter path) gets exactly the outcome of a batch
holding that one ``Msg``, and neither sends a request when there is nothing to address.
(How the requests are then sent is in test_pipelined.py.)

The messages are real deliveries of the test bed's nats-server on a core NATS subscription;
nats-server refuses a publish whose reply is a ``$JS.ACK`` subject, so the malformed ack
subjects are set on the delivered ``Msg`` afterwards. The connection's own counters say nothing
was sent.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from faststream.nats.message import NatsBatchMessage, NatsMessage
from nats.aio.client import Client
from nats.aio.msg import Msg

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from tests.nats.harness import WAIT, JetStreamHarness

REPLIES = {
    "core NATS": None,
    "an ack subject with a sequence that is no number": "$JS.ACK.orders.app.1.x.7.0.0",
    "an ack subject of a layout JetStream does not use": "$JS.ACK.orders.app.1",
}


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
    nats_server: Any, reply: str | None
) -> None:
    async with JetStreamHarness(nats_server) as harness:
        client = harness.reader
        msg = await delivered(client, reply)
        sent = client.stats["out_msgs"]
        alone, batch = await JetStreamAdapter().delete_many(
            [NatsMessage(raw_message=msg, body=msg.data),
             NatsBatchMessage(raw_message=[msg], body=[])]
        )  # fmt: skip
        assert client.stats["out_msgs"] == sent  # no request of any kind
    assert outcome(alone) == outcome(batch)
    if reply is not None and reply.split(".")[5:6] == ["x"]:
        assert isinstance(alone, msgdel.NotDeletable)
        assert "names no stream sequence" in str(alone)
    else:  # never stored by JetStream
        assert isinstance(alone, msgdel.DeleteResult)
        assert alone.outcome is msgdel.Outcome.NOTHING_STORED
