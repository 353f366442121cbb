"""JetStream: a stream deleted and created again under its name reuses its sequence numbers.

A message held from the old stream must not delete the new stream's message at the same
sequence: the adapter compares the message's timestamp (in its ack subject) with the stream's
creation time (``STREAM.INFO``, read once per stream and call anyway) and reports
``ALREADY_GONE``.
"""

from __future__ import annotations

from typing import Any

import pytest

import msgdel
from msgdel import Outcome
from msgdel.adapters.nats import JetStreamAdapter
from tests.nats.harness import JetStreamHarness, payload


@pytest.mark.parametrize("ignore_other_consumers", [False, True])
async def test_a_message_of_a_recreated_stream_is_already_gone_and_the_new_one_stays(
    nats_server: Any, ignore_other_consumers: bool
) -> None:
    adapter = JetStreamAdapter(ignore_other_consumers=ignore_other_consumers)
    async with JetStreamHarness(nats_server, adapter=adapter) as harness:
        async with harness.consumed(1) as got:
            await harness.js.delete_stream(got.target)
            await harness.js.add_stream(name=got.target, subjects=[harness.subject(got.target)])
            newer = await harness.js.publish(harness.subject(got.target), payload(99))
            assert (newer.seq,) == tuple(int(i) for i in got.ids[0])  # the same sequence

            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert (result.outcome, result.removed) == (Outcome.ALREADY_GONE, 0)
        assert await harness.stored(got.target) == [str(newer.seq)]


async def test_a_message_of_a_deleted_stream_is_already_gone(nats_server: Any) -> None:
    async with JetStreamHarness(nats_server) as harness:
        async with harness.consumed(1) as got:
            await harness.js.delete_stream(got.target)
            result = await msgdel.delete(got.messages[0], registry=harness.registry)
        assert result.outcome is Outcome.ALREADY_GONE
