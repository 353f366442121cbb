"""Property: whatever the interleaving of submits, flushes, failures, cancellations and close,
every Batcher future settles exactly once, with the truth about its message."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from msgdel import (
    BaseAdapter,
    Batcher,
    DeleteResult,
    DeletionFailed,
    Features,
    MsgdelError,
    NotDeletable,
    Outcome,
    Registry,
    Semantics,
)


@attrs.frozen
class Item:
    id: int
    target: str
    fate: str  # "ok", "flaky" (fails retryably once), "down" (always retryably), "bad"


class Store(BaseAdapter):
    """An in-process broker: what is stored, what each call removed."""

    features = Features("store", Semantics.EXACT)

    def __init__(self) -> None:
        self.stored: set[int] = set()
        self.removals: dict[int, int] = {}
        self.failed_once: set[int] = set()

    async def delete_many(self, messages: Sequence[Item], /) -> list[DeleteResult | MsgdelError]:
        await asyncio.sleep(0)  # a round trip: other tasks run meanwhile
        outcomes: list[DeleteResult | MsgdelError] = []
        for item in messages:
            if item.fate == "bad":
                outcomes.append(NotDeletable(f"{item.id} cannot be addressed"))
            elif item.fate == "down" or (item.fate == "flaky" and item.id not in self.failed_once):
                self.failed_once.add(item.id)
                outcomes.append(DeletionFailed(f"{item.target} is down", retryable=True))
            else:
                removed = int(item.id in self.stored)
                self.stored.discard(item.id)
                self.removals[item.id] = self.removals.get(item.id, 0) + removed
                outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
                outcomes.append(
                    DeleteResult(
                        "store", item.target, (str(item.id),), Semantics.EXACT, outcome, removed
                    )
                )
        return outcomes


steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.sampled_from(["a", "b"]),
            st.sampled_from(["ok", "ok", "flaky", "down", "bad"]),
        ),
        st.tuples(st.just("flush")),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=30)),
        st.tuples(st.just("yield")),
    ),
    max_size=40,
)


async def run(plan: list[tuple[Any, ...]], max_size: int) -> None:
    store = Store()
    registry = Registry(builtins=False)
    registry.register(Item, store)
    batcher = Batcher(registry, max_size=max_size, max_delay=0.001, retries=2, backoff=0)
    futures: list[tuple[Item, asyncio.Future[DeleteResult]]] = []
    cancelled: set[int] = set()
    for step in plan:
        if step[0] == "submit":
            item = Item(len(futures), step[1], step[2])
            store.stored.add(item.id)
            futures.append((item, await batcher.submit(item)))
        elif step[0] == "flush":
            await batcher.flush()
        elif step[0] == "cancel" and step[1] < len(futures):
            if futures[step[1]][1].cancel():
                cancelled.add(step[1])
        else:
            await asyncio.sleep(0)
    await batcher.close()

    assert batcher.pending == 0
    for index, (item, future) in enumerate(futures):
        assert future.done()
        if future.cancelled():
            assert index in cancelled
            continue
        error = future.exception()
        if item.fate == "bad":
            assert isinstance(error, NotDeletable)
        elif item.fate == "down":
            assert isinstance(error, DeletionFailed)
            assert error.retryable
        else:
            assert error is None
            result = future.result()
            assert result.ids == (str(item.id),)
            # the truth: DELETED exactly when this call removed it, and never twice
            assert result.outcome is (Outcome.DELETED if result.removed else Outcome.ALREADY_GONE)
            assert store.removals.get(item.id, 0) == 1
            assert item.id not in store.stored
    for item, future in futures:
        if future.cancelled() and item.fate != "bad":
            # withdrawn before it was sent, or sent anyway: either way never removed twice
            assert store.removals.get(item.id, 0) <= 1


@settings(max_examples=200, deadline=None)
@given(plan=steps, max_size=st.integers(min_value=1, max_value=6))
def test_every_future_settles_once_with_its_messages_truth(
    plan: list[tuple[Any, ...]], max_size: int
) -> None:
    asyncio.run(run(plan, max_size))
