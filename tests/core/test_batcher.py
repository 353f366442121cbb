"""msgdel.Batcher: batches by size, delay and close; one result per message; bounded memory.

The adapters here are real msgdel adapters for a tiny in-process "broker" (a set of stored
ids), registered in their own ``Registry(builtins=False)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import attrs
import pytest

from msgdel import (
    AdapterNotFound,
    BaseAdapter,
    DeleteResult,
    DeletionFailed,
    Features,
    MsgdelError,
    Outcome,
    Registry,
    Semantics,
    UnsupportedDeletion,
)
from msgdel.batcher import Batcher


@attrs.frozen
class Note:
    target: str
    id: int


@attrs.frozen
class Other:
    target: str
    id: int


class Store(BaseAdapter):
    """An in-process broker: ids stored per target; the adapter deletes from it."""

    features = Features("store", Semantics.EXACT)

    def __init__(self, *, fail_target: str | None = None) -> None:
        self.stored: set[tuple[str, int]] = set()
        self.calls: list[list[int]] = []
        self.fail_target = fail_target

    def _one(self, message: Note) -> DeleteResult:
        if message.target == self.fail_target:
            raise DeletionFailed(f"target {message.target} refuses deletes", retryable=False)
        key = (message.target, message.id)
        gone = key not in self.stored
        self.stored.discard(key)
        outcome = Outcome.ALREADY_GONE if gone else Outcome.DELETED
        return DeleteResult("store", message.target, [message.id], self.semantics, outcome,
                            removed=0 if gone else 1)  # fmt: skip

    async def delete(self, message: Note, /) -> DeleteResult:
        self.calls.append([message.id])
        return self._one(message)

    async def delete_many(
        self, messages: Sequence[Note], /
    ) -> Sequence[DeleteResult | MsgdelError]:
        """One outcome per message: the failing target's messages get its error."""
        self.calls.append([m.id for m in messages])
        outcomes: list[DeleteResult | MsgdelError] = []
        for message in messages:
            try:
                outcomes.append(self._one(message))
            except MsgdelError as exc:
                outcomes.append(exc)
        return outcomes


class Flaky(Store):
    """Unreachable (retryable) for the first ``failures`` calls, then fine."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def delete_many(self, messages: Sequence[Note], /) -> Sequence[DeleteResult]:
        self.calls.append([m.id for m in messages])
        if self.failures:
            self.failures -= 1
            raise DeletionFailed("broker unreachable", retryable=True)
        return [self._one(m) for m in messages]


class Gated(Store):
    """Waits for ``gate`` before deleting, to hold batches in flight; ``in_flight`` is set once
    a batch is."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.in_flight = asyncio.Event()

    async def delete_many(self, messages: Sequence[Note], /) -> Sequence[DeleteResult]:
        self.in_flight.set()
        await self.gate.wait()
        return await super().delete_many(messages)


def setup(adapter: Store, count: int = 0, target: str = "t") -> tuple[Registry, list[Note]]:
    registry = Registry(builtins=False)
    registry.register(Note, adapter)
    notes = [Note(target, i) for i in range(count)]
    adapter.stored.update((n.target, n.id) for n in notes)
    return registry, notes


async def test_a_full_batch_is_sent_at_once_in_one_delete_many() -> None:
    store = Store()
    registry, notes = setup(store, 3)
    async with Batcher(registry, max_size=3, max_delay=60) as batcher:
        futures = [await batcher.submit(n) for n in notes]
        results = await asyncio.wait_for(asyncio.gather(*futures), 1)
    assert store.calls == [[0, 1, 2]]
    assert [r.ids for r in results] == [("0",), ("1",), ("2",)]
    assert all(r.outcome is Outcome.DELETED for r in results)
    assert store.stored == set()


async def test_a_full_batch_is_on_its_way_before_submit_returns() -> None:
    """A handler that never waits (a backlog read at once, handled in one go) gets each
    full batch sent as it fills, not all of them once it is done."""
    store = Gated()
    registry, notes = setup(store, 6)
    batcher = Batcher(registry, max_size=3, max_delay=60)
    for note in notes[:3]:
        await batcher.submit(note)
    assert store.in_flight.is_set()  # the deletion of the first three is under way
    store.gate.set()
    for note in notes[3:]:
        await batcher.submit(note)
    await batcher.close()
    assert store.calls == [[0, 1, 2], [3, 4, 5]]


async def test_a_partial_batch_is_sent_after_max_delay() -> None:
    store = Store()
    registry, notes = setup(store, 2)
    batcher = Batcher(registry, max_size=100, max_delay=0.01)
    futures = [await batcher.submit(n) for n in notes]
    assert store.calls == []
    await asyncio.wait_for(asyncio.gather(*futures), 1)
    assert store.calls == [[0, 1]]
    await batcher.close()


async def test_closing_sends_everything_pending_and_settles_every_future() -> None:
    store = Store()
    registry, notes = setup(store, 5)
    async with Batcher(registry, max_size=100, max_delay=60) as batcher:
        futures = [await batcher.submit(n) for n in notes]
    assert all(f.done() for f in futures)
    assert batcher.pending == 0
    assert store.stored == set()


async def test_flush_sends_now_and_waits_for_the_results() -> None:
    store = Store()
    registry, notes = setup(store, 2)
    batcher = Batcher(registry, max_size=100, max_delay=60)
    futures = [await batcher.submit(n) for n in notes]
    await batcher.flush()
    assert all(f.done() for f in futures)
    assert store.calls == [[0, 1]]
    await batcher.close()


async def test_delete_submits_and_returns_the_result() -> None:
    store = Store()
    registry, notes = setup(store, 1)
    async with Batcher(registry) as batcher:
        result = await batcher.delete(notes[0])
    assert result.outcome is Outcome.DELETED
    assert result.removed == 1


async def test_each_adapter_gets_its_own_delete_many() -> None:
    notes_store, other_store = Store(), Store()
    registry = Registry(builtins=False)
    registry.register(Note, notes_store)
    registry.register(Other, other_store)
    notes_store.stored.update({("t", 1), ("t", 3)})
    other_store.stored.add(("t", 2))
    async with Batcher(registry, max_delay=60) as batcher:
        futures = [await batcher.submit(m) for m in (Note("t", 1), Other("t", 2), Note("t", 3))]
    assert notes_store.calls == [[1, 3]]
    assert other_store.calls == [[2]]
    assert [f.result().ids for f in futures] == [("1",), ("2",), ("3",)]


async def test_a_failing_target_fails_only_its_own_messages() -> None:
    store = Store(fail_target="bad")
    registry, good = setup(store, 2, target="good")
    async with Batcher(registry, max_delay=60) as batcher:
        futures = [await batcher.submit(m) for m in (good[0], Note("bad", 9), good[1])]
    assert futures[0].result().outcome is Outcome.DELETED
    assert futures[2].result().outcome is Outcome.DELETED
    error = futures[1].exception()
    assert isinstance(error, DeletionFailed)
    assert "bad refuses" in str(error)
    assert store.stored == set()


async def test_an_adapter_crash_lands_on_the_futures_as_deletion_failed() -> None:
    class Crashing(Store):
        async def delete_many(self, messages: Sequence[Note], /) -> Sequence[DeleteResult]:
            raise RuntimeError("boom")

    registry, notes = setup(Crashing(), 1)
    async with Batcher(registry) as batcher:
        future = await batcher.submit(notes[0])
    error = future.exception()
    assert isinstance(error, DeletionFailed)
    assert not error.retryable
    assert isinstance(error.cause, RuntimeError)


async def test_a_wrong_number_of_results_is_an_error_not_a_misattribution() -> None:
    class Short(Store):
        async def delete_many(self, messages: Sequence[Note], /) -> Sequence[DeleteResult]:
            return [self._one(messages[0])]

        async def delete(self, message: Note, /) -> DeleteResult:
            raise DeletionFailed("single deletes are refused too", retryable=False)

    registry, notes = setup(Short(), 2)
    async with Batcher(registry) as batcher:
        futures = [await batcher.submit(n) for n in notes]
    assert all(isinstance(f.exception(), DeletionFailed) for f in futures)


async def test_retryable_failures_are_retried_until_the_broker_answers() -> None:
    store = Flaky(failures=2)
    registry, notes = setup(store, 3)
    async with Batcher(registry, max_delay=60, backoff=0) as batcher:
        futures = [await batcher.submit(n) for n in notes]
    assert [f.result().outcome for f in futures] == [Outcome.DELETED] * 3
    assert store.calls == [[0, 1, 2]] * 3


async def test_retries_are_bounded_and_then_every_message_gets_the_error() -> None:
    store = Flaky(failures=100)
    registry, notes = setup(store, 2)
    async with Batcher(registry, max_delay=60, retries=3, backoff=0) as batcher:
        futures = [await batcher.submit(n) for n in notes]
    assert len(store.calls) == 4
    for future in futures:
        error = future.exception()
        assert isinstance(error, DeletionFailed)
        assert error.retryable
    assert len(store.stored) == 2


async def test_submit_waits_for_room_when_max_pending_messages_are_outstanding() -> None:
    store = Gated()
    registry, notes = setup(store, 5)
    batcher = Batcher(registry, max_size=2, max_delay=0, max_pending=4)
    first = [await batcher.submit(n) for n in notes[:4]]
    blocked = asyncio.create_task(batcher.submit(notes[4]))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert batcher.pending == 4
    store.gate.set()
    last = await asyncio.wait_for(blocked, 1)
    await batcher.close()
    assert all(f.result().deleted for f in [*first, last])


async def test_memory_stays_bounded_by_max_pending_over_many_submissions() -> None:
    store = Store()
    registry, notes = setup(store, 20_000)
    high_water = 0
    async with Batcher(registry, max_size=256, max_delay=0.001, max_pending=1_000) as batcher:
        for note in notes:
            await batcher.submit(note)
            high_water = max(high_water, batcher.pending)
    assert high_water <= 1_000
    assert store.stored == set()
    assert max(len(c) for c in store.calls) <= 256


async def test_cancelling_a_caller_does_not_withdraw_its_deletion() -> None:
    store = Gated()
    registry, notes = setup(store, 2)
    batcher = Batcher(registry, max_delay=0)
    callers = [asyncio.create_task(batcher.delete(n)) for n in notes]
    await asyncio.wait_for(store.in_flight.wait(), 10)
    callers[0].cancel()
    store.gate.set()
    assert (await callers[1]).deleted
    await batcher.close()
    assert callers[0].cancelled()
    assert store.stored == set()


async def test_cancelling_a_future_before_it_is_sent_withdraws_the_deletion() -> None:
    store = Store()
    registry, notes = setup(store, 2)
    async with Batcher(registry, max_delay=60) as batcher:
        withdrawn = await batcher.submit(notes[0])
        kept = await batcher.submit(notes[1])
        withdrawn.cancel()
    assert kept.result().deleted
    assert store.stored == {("t", 0)}


async def test_a_cancelled_close_does_not_lose_the_batch_in_flight() -> None:
    store = Gated()
    registry, notes = setup(store, 3)
    batcher = Batcher(registry, max_delay=60)
    futures = [await batcher.submit(n) for n in notes]
    closing = asyncio.create_task(batcher.close())
    await asyncio.wait_for(store.in_flight.wait(), 10)
    closing.cancel()
    store.gate.set()
    await batcher.close()
    assert all(f.result().deleted for f in futures)


async def test_a_cancelled_batch_settles_its_futures_with_a_retryable_error() -> None:
    store = Gated()
    registry, notes = setup(store, 2)
    batcher = Batcher(registry, max_delay=0)
    futures = [await batcher.submit(n) for n in notes]
    await asyncio.wait_for(store.in_flight.wait(), 10)
    for task in list(batcher._inflight):
        task.cancel()
    await batcher.close()
    for future in futures:
        error = future.exception()
        assert isinstance(error, DeletionFailed)
        assert error.retryable
    assert batcher.pending == 0


async def test_submit_after_close_is_refused() -> None:
    batcher = Batcher(setup(Store())[0])
    await batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(Note("t", 1))


async def test_a_message_without_adapter_is_refused_at_submit() -> None:
    async with Batcher(Registry(builtins=False)) as batcher:
        with pytest.raises(AdapterNotFound):
            await batcher.submit(Note("t", 1))
        assert batcher.pending == 0


async def test_require_refuses_weaker_adapters_at_submit() -> None:
    store = Store()
    store.features = Features("store", Semantics.PREFIX)
    registry, notes = setup(store, 1)
    async with Batcher(registry, require=Semantics.EXACT) as batcher:
        with pytest.raises(UnsupportedDeletion):
            await batcher.submit(notes[0])
    assert store.calls == []


def test_a_registry_must_be_a_registry() -> None:
    with pytest.raises(TypeError, match=r"msgdel\.Registry"):
        Batcher("redis://localhost")  # type: ignore[arg-type]
