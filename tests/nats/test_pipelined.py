"""How ``JetStreamAdapter.delete_many`` sends its deletions: pipelined, one reply subscription
per call, at most ``concurrency`` requests unanswered, each answered within ``timeout`` or
failed retryably; a connection that drops fails what it left unanswered.

Where a spec needs JetStream to answer late (or not at all) the adapter's ``api_prefix``
points at :class:`SlowJetStream`: a responder on the harness's reader connection that passes
every request on to the server's real JetStream API at once and holds back the answers it is
told to. What the server stores is read as everywhere else (``harness.stored``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

import msgdel
from msgdel import DeleteResult, DeletionFailed, MsgdelError, Outcome
from msgdel.adapters.nats import JetStreamAdapter
from tests.eventually import eventually
from tests.nats.harness import WAIT, JetStreamHarness

PREFIX = "slow.API"
"""The API prefix :class:`SlowJetStream` answers on."""


class SlowJetStream:
    """Answers JetStream API requests on :data:`PREFIX` through the real ``$JS.API``: each
    request is carried out at once; a deletion whose sequence ``hold(seq)`` picks has its
    answer held back (``delay`` seconds, or for good when ``delay`` is None, until
    :meth:`release`). ``deletions`` counts the deletion requests received."""

    def __init__(
        self, client: Client, hold: Callable[[int], bool], delay: float | None = None
    ) -> None:
        self.client = client
        self.hold = hold
        self.delay = delay
        self.held: list[int] = []
        self.late: list[asyncio.Task[None]] = []
        self.kept: list[tuple[str, bytes]] = []  # answers held for good, until `release`
        self.deletions = 0

    async def __aenter__(self) -> SlowJetStream:
        self.subscription = await self.client.subscribe(f"{PREFIX}.>", cb=self.answer)
        await self.client.flush()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.subscription.unsubscribe()
        for task in self.late:
            task.cancel()

    async def answer(self, msg: Msg) -> None:
        call = msg.subject.removeprefix(f"{PREFIX}.")
        reply = await self.client.request(f"$JS.API.{call}", msg.data, timeout=WAIT)
        deletion = call.startswith("STREAM.MSG.DELETE.")
        self.deletions += deletion
        if deletion and self.hold(json.loads(msg.data)["seq"]):
            self.held.append(json.loads(msg.data)["seq"])
            if self.delay is not None:
                self.late.append(asyncio.ensure_future(self.later(msg.reply, reply.data)))
            else:
                self.kept.append((msg.reply, reply.data))
            return
        await self.client.publish(msg.reply, reply.data)

    async def release(self, count: int | None = None) -> None:
        """Send the first ``count`` answers held for good (default: all) now."""
        count = len(self.kept) if count is None else count
        for subject, data in self.kept[:count]:
            await self.client.publish(subject, data)
        del self.kept[:count]
        await self.client.flush()

    async def later(self, subject: str, data: bytes) -> None:
        await asyncio.sleep(self.delay or 0)
        await self.client.publish(subject, data)


def outcomes_so_far(call: asyncio.Future[Any]) -> str:
    """What a call still running, or done, has given (for an assertion's message)."""
    return f"call done: {call.result()!r}" if call.done() else "call still running"


def seqs(messages: Sequence[Any]) -> list[int]:
    return [int(m.raw_message.metadata.sequence.stream) for m in messages]


async def test_a_batch_larger_than_its_concurrency_deletes_exactly_its_sequences(
    nats_server: Any,
) -> None:
    adapter = JetStreamAdapter(concurrency=4)
    async with JetStreamHarness(nats_server, pull=True, adapter=adapter) as harness:
        async with harness.consumed(90) as got:
            chosen = [m for i, m in enumerate(got.messages) if i % 3 != 1]
            results = await msgdel.delete_many(chosen, registry=harness.registry)
            sent = await harness.requests(got.target)
        assert [r.outcome for r in results] == [Outcome.DELETED] * 60
        assert [r.ids for r in results] == [got.ids[i] for i in range(90) if i % 3 != 1]
        assert sent == 60, "one request per sequence, none repeated"
        neighbours = [got.ids[i][0] for i in range(1, 90, 3)]
        assert await harness.stored(got.target) == neighbours
        state = (await harness.js.stream_info(got.target)).state
        assert (state.messages, state.first_seq, state.last_seq) == (30, 2, 90)


async def test_replies_after_the_timeout_are_not_counted_and_a_retry_is_already_gone(
    nats_server: Any,
) -> None:
    # The late answers are sent only once the call has returned: their requests have timed
    # out by then whatever the machine's load, while the others are answered at once.
    adapter = JetStreamAdapter(api_prefix=PREFIX, concurrency=100, timeout=5.0)
    async with JetStreamHarness(nats_server) as harness, harness.consumed(10) as got:
        late = set(seqs(got.messages)[1::2])
        async with SlowJetStream(harness.reader, lambda seq: seq in late) as slow:
            outcomes = await adapter.delete_many(got.messages)
            await slow.release()
            await asyncio.sleep(0.3)  # the late answers have come, and were dropped
        assert await harness.stored(got.target) == [], f"the server deleted every one: {outcomes}"
        retried = await JetStreamAdapter().delete_many(
            [m for m, o in zip(got.messages, outcomes) if not isinstance(o, DeleteResult)]
        )
    for seq, outcome in zip(seqs(got.messages), outcomes):
        if seq in late:
            assert isinstance(outcome, DeletionFailed), outcome
            assert outcome.retryable is True
            assert "did not answer in time, so whether it did is unknown" in str(outcome)
        else:
            assert isinstance(outcome, DeleteResult), outcome
            assert outcome.outcome is Outcome.DELETED
    again = [r.outcome if isinstance(r, DeleteResult) else r for r in retried]
    assert again == [Outcome.ALREADY_GONE] * len(late), "carried out before: gone, not DELETED"


async def test_a_server_stopped_mid_batch_fails_the_unanswered_retryably_and_a_retry_finishes(
    nats_server: Any,
) -> None:
    adapter = JetStreamAdapter(api_prefix=PREFIX, concurrency=8, timeout=WAIT)
    async with JetStreamHarness(nats_server) as harness, harness.consumed(40) as got:
        answered = set(seqs(got.messages)[:10])
        slow = SlowJetStream(harness.reader, lambda seq: seq not in answered)
        async with slow:
            call = asyncio.ensure_future(adapter.delete_many(got.messages))
            # ten answered, then eight held: the batch waits for them with 22 unsent
            held = await eventually(lambda: len(slow.held), 8, within=WAIT)
            await asyncio.sleep(0.2)
            assert (held, len(slow.held)) == (8, 8), (
                f"no more than `concurrency` unanswered: held {slow.held}, {outcomes_so_far(call)}"
            )
            assert not call.done()
            await harness.stop()
            try:
                outcomes: list[DeleteResult | MsgdelError] = await asyncio.wait_for(call, WAIT)
            finally:
                await harness.start()
        failed = [m for m, o in zip(got.messages, outcomes) if not isinstance(o, DeleteResult)]
        retried = await JetStreamAdapter().delete_many(failed)
        left = await harness.stored(got.target)
    by_seq = dict(zip(seqs(got.messages), outcomes))
    for seq, outcome in by_seq.items():
        if seq in answered:
            assert isinstance(outcome, DeleteResult), outcome
            assert outcome.outcome is Outcome.DELETED
            continue
        assert isinstance(outcome, DeletionFailed), outcome
        assert outcome.retryable is True
        if seq in slow.held:  # carried out, its answer never came
            assert "whether it did is unknown" in str(outcome)
        else:
            assert "nothing was sent" in str(outcome)
    again = dict(zip(seqs(failed), retried))
    assert all(isinstance(r, DeleteResult) for r in retried), retried
    assert {s for s, r in again.items() if r.outcome is Outcome.ALREADY_GONE} == set(slow.held)
    assert {s for s, r in again.items() if r.outcome is Outcome.DELETED} == (
        set(by_seq) - answered - set(slow.held)
    ), "none is reported DELETED twice"
    assert left == []


async def test_a_full_window_sends_again_once_a_fifth_of_it_is_answered(nats_server: Any) -> None:
    """Once ``concurrency`` requests are unanswered, the next go out a fifth of the window at
    a time (in a few writes, which costs an erasing server less than one per answer)."""
    adapter = JetStreamAdapter(api_prefix=PREFIX, concurrency=10, timeout=WAIT)
    async with JetStreamHarness(nats_server) as harness, harness.consumed(20) as got:
        async with SlowJetStream(harness.reader, lambda seq: True) as slow:
            call = asyncio.ensure_future(adapter.delete_many(got.messages))
            assert await eventually(lambda: slow.deletions, 10) == 10
            await slow.release(1)
            await asyncio.sleep(0.3)  # time enough for a request the answer would free
            assert slow.deletions == 10, "one slot free of ten: nothing sent yet"
            await slow.release(1)
            assert await eventually(lambda: slow.deletions, 12) == 12
            await asyncio.sleep(0.3)
            assert slow.deletions == 12, "two slots free: two sent, not more"
            while not call.done():  # answer the rest as they come
                await slow.release()
                await asyncio.sleep(0.02)
            results = await call
        assert [r.outcome for r in results if isinstance(r, DeleteResult)] == [
            Outcome.DELETED
        ] * 20, results
        assert slow.deletions == 20, "one request per message"
        assert await harness.stored(got.target) == []


@pytest.fixture(autouse=True)
def _server_running(nats_server: Any) -> Any:
    """A spec that stops the session's server leaves it running for the next one."""
    yield
    if not nats_server.running:
        nats_server.start()
