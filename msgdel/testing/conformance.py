"""The conformance kit: one pytest suite that every msgdel adapter passes, built-in or yours.

You describe your broker once in a [`Harness`][msgdel.testing.conformance.Harness] (how to publish
to a fresh target, consume the messages as FastStream message objects, and read the broker's own
state without msgdel), then subclass
[`AdapterConformance`][msgdel.testing.conformance.AdapterConformance] and give it a `harness`
fixture:

```python
import pytest
from msgdel.testing.conformance import AdapterConformance

class TestMyAdapter(AdapterConformance):
    @pytest.fixture
    def harness(self):
        return MyHarness()
```

Every case checks the broker's state, not only what the adapter said. Cases that do not apply
to the adapter's declared [`Features`][msgdel.Features] (its semantics, whether it coalesces) or
that the harness cannot drive (no in-memory test broker, a broker that cannot be stopped) are
skipped with the reason. The cases are coroutines: the kit needs pytest-asyncio.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar

import attrs
import pytest
import pytest_asyncio
from faststream import AckPolicy, BaseMiddleware

import msgdel
from msgdel.address import Address
from msgdel.errors import DeletionFailed, MsgdelError, UnsupportedDeletion
from msgdel.features import Features
from msgdel.protocol import Deletable
from msgdel.registry import Registry, check_adapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics
from msgdel.testing import record_deletions

__all__ = ["AdapterConformance", "Consumed", "Handle", "Harness"]

Handle = Callable[[int, Any], Awaitable[None]]
"""What a [`Harness.run_app`][msgdel.testing.conformance.Harness.run_app] handler does with the
`index`-th message it receives."""


@attrs.frozen
class Consumed:
    """Messages a harness published to a fresh target and consumed through FastStream."""

    target: Any
    """Whatever the harness needs to read the target's state back (a stream name, ...)."""
    messages: list[Any]
    """The FastStream message objects, in publishing order."""
    ids: list[tuple[str, ...]]
    """Each message's broker ids as a [`DeleteResult`][msgdel.DeleteResult] reports them."""
    keys: list[str | None] = attrs.field(factory=list)
    """Each message's key, for tombstoning adapters (else empty)."""


class Harness(abc.ABC):
    """How the kit drives one adapter on one broker. Subclass it for yours.

    Required: [`registry`][msgdel.testing.conformance.Harness.registry],
    [`message_type`][msgdel.testing.conformance.Harness.message_type],
    [`consumed`][msgdel.testing.conformance.Harness.consumed] and
    [`stored`][msgdel.testing.conformance.Harness.stored] (for stored semantics). Optional methods
    raise `NotImplementedError` by default, and the cases that need them are skipped.
    """

    @property
    @abc.abstractmethod
    def registry(self) -> Registry:
        """The registry the kit deletes through (yours, or `msgdel.Registry()` for a
        built-in adapter). It is closed after every case."""

    @property
    @abc.abstractmethod
    def message_type(self) -> type:
        """The message class whose adapter is under test."""

    @property
    def adapter(self) -> Deletable:
        """The adapter under test: what [`registry`][msgdel.testing.conformance.Harness.registry]
        resolves [`message_type`][msgdel.testing.conformance.Harness.message_type] to."""
        return self.registry.resolve(self.message_type)

    @property
    def semantics(self) -> Semantics:
        """What deleting this harness's messages does (default: the adapter's declared
        semantics; a harness of core NATS messages, say, says `NOT_STORED`)."""
        return self.adapter.features.semantics

    acknowledgeable: bool = True
    """Whether a handler can acknowledge these messages at all (a Redis stream read without a
    group cannot: FastStream reports `AckPolicy.MANUAL` for it, and a handler that returns
    is done with its message). The `AckPolicy.MANUAL` case is skipped where it cannot."""

    round_trips: int = 1
    """The most deletion requests a coalescing `delete_many` may send for one target."""

    @abc.abstractmethod
    def consumed(self, count: int) -> AbstractAsyncContextManager[Consumed]:
        """Publish `count` messages to a fresh target (one partition, where the broker has
        partitions), consume them through FastStream without acknowledging them, and yield
        them while the broker connection stays open."""

    async def stored(self, target: Any) -> list[str]:
        """The ids the broker still stores for `target`, in order, read without msgdel.
        The kit calls it after the [`consumed`][msgdel.testing.conformance.Harness.consumed] block
        has closed."""
        raise NotImplementedError

    async def tombstoned(self, target: Any) -> list[str]:
        """The keys whose latest record at `target` is a tombstone (TOMBSTONE adapters)."""
        raise NotImplementedError

    async def requests(self, target: Any) -> int:
        """How many deletion requests (round trips) the broker has received for `target`
        since [`consumed`][msgdel.testing.conformance.Harness.consumed] created it. Called inside
        the [`consumed`][msgdel.testing.conformance.Harness.consumed] block."""
        raise NotImplementedError

    def in_memory(self, count: int) -> AbstractAsyncContextManager[list[Any]]:
        """`count` messages consumed under FastStream's in-memory test broker."""
        raise NotImplementedError

    async def run_app(
        self,
        middleware: Any,
        count: int,
        *,
        handle: Handle | None = None,
        ack_policy: AckPolicy | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        publishes: bool = False,
    ) -> Consumed:
        """Run a FastStream app whose broker has `middleware`; publish `count` messages to
        a fresh target; let its handler await `handle(index, message)` for every delivery
        of the `index`-th message (`handle` may acknowledge, nack, reject, raise, or delete
        the message itself; without one the handler does nothing); wait until every index
        was handled at least once; await `on_shutdown` while the broker is still connected;
        stop the app; return the target with the published ids (`messages` empty).

        `middleware` is one FastStream broker middleware, or a sequence of them, outermost
        first (as a broker's `middlewares=` takes them). `ack_policy` is the subscriber's
        (None: FastStream's default for it). With `publishes` the subscriber also has a
        publisher (`@broker.publisher(...)`) to a fresh output target, and its handler
        returns a result (the harness chooses it), which FastStream publishes there after
        the handler returned; a harness that cannot raises `NotImplementedError`, and the
        case is skipped."""
        raise NotImplementedError

    restartable: bool = False
    """Whether [`stop`][msgdel.testing.conformance.Harness.stop] and
    [`start`][msgdel.testing.conformance.Harness.start] can take the broker down and back up."""

    async def stop(self) -> None:
        """Stop the broker behind [`consumed`][msgdel.testing.conformance.Harness.consumed]'s
        messages (they stay stored)."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start it again, and wait until it answers."""
        raise NotImplementedError

    def addresses(self, consumed: Consumed) -> list[Address]:
        """The [address][msgdel.address.Address] of each id of `consumed` (its `ids`,
        flattened, in order), for an adapter that deletes by address
        (`features.by_address`); the address cases are skipped where this is not given."""
        raise NotImplementedError

    def connection(self) -> Any:
        """What [`msgdel.delete_at`][msgdel.delete_at] connects with: the broker's URL (or a
        client). Required with [`addresses`][msgdel.testing.conformance.Harness.addresses]."""
        raise NotImplementedError

    async def nack(self, message: Any) -> None:
        """Nack `message` for redelivery, as a handler would (default: `message.nack()`). A
        harness whose consumer hands a nacked message back before any other (a JetStream
        pull consumer fetching small batches) may delay the redelivery here, so that the
        other messages are delivered too."""
        await message.nack()

    def hollow(self) -> Any:
        """A message of [`message_type`][msgdel.testing.conformance.Harness.message_type] that no
        broker delivered (default: an instance made without calling its `__init__`)."""
        cls: Any = self.message_type
        return cls.__new__(cls)


def _flat(ids: Sequence[tuple[str, ...]]) -> list[str]:
    return [i for group in ids for i in group]


async def _optional(call: Any, *args: Any) -> Any:
    try:
        return await call(*args)
    except NotImplementedError:
        return None


def _stores(harness: Harness) -> bool:
    return harness.semantics in (Semantics.EXACT, Semantics.PREFIX)


def _addressed(harness: Harness, consumed: Consumed) -> list[Address]:
    """The harness's addresses of `consumed`, or skip the case."""
    if not harness.adapter.features.by_address:
        pytest.skip("the adapter does not delete by address (features.by_address)")
    if not _stores(harness):
        pytest.skip("nothing stored: nothing to address")
    try:
        return harness.addresses(consumed)
    except NotImplementedError:
        pytest.skip("the harness gives no addresses")


async def _delete_at(harness: Harness, addresses: list[Address], **options: Any) -> Any:
    adapter: Any = harness.adapter
    return await msgdel.delete_at(
        harness.connection(), addresses, adapter=adapter, registry=harness.registry, **options
    )


def _kept_as_promised(result: DeleteResult, position: int, ids: list[str], left: list[str]) -> None:
    """What the broker stores agrees with the result of deleting `ids[position]`."""
    if result.outcome is Outcome.DEFERRED:
        assert ids[position] in left, f"{ids[position]} was reported DEFERRED but is gone"
        return
    assert result.outcome is Outcome.DELETED, result
    gone = ids[: position + 1] if result.semantics is Semantics.PREFIX else [ids[position]]
    assert left == [i for i in ids if i not in gone], (result, left)


class AdapterConformance:
    """The cases every adapter passes. Subclass it and define a `harness` fixture."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.asyncio]

    @pytest_asyncio.fixture
    async def kit(self, harness: Harness) -> AsyncIterator[Harness]:
        """The harness, with its registry closed after the case."""
        try:
            yield harness
        finally:
            await harness.registry.aclose()

    # -- the declaration -----------------------------------------------------------------
    async def test_the_adapter_declares_its_features_and_satisfies_the_protocol(
        self, kit: Harness
    ) -> None:
        adapter = kit.adapter
        assert isinstance(adapter.features, Features)
        check_adapter(adapter)  # raises TypeError saying what is missing
        assert kit.semantics.satisfies(kit.semantics)

    # -- what a delete does at the broker ------------------------------------------------
    async def test_exact_removes_the_message_and_leaves_its_neighbours(self, kit: Harness) -> None:
        if kit.semantics is not Semantics.EXACT:
            pytest.skip(f"semantics {kit.semantics.name}, not EXACT")
        async with kit.consumed(3) as got:
            result = await msgdel.delete(got.messages[1], registry=kit.registry)
        assert result.broker == kit.adapter.features.broker
        assert result.ids == got.ids[1]
        assert (result.semantics, result.outcome) == (Semantics.EXACT, Outcome.DELETED)
        assert result.removed == len(got.ids[1])
        assert await kit.stored(got.target) == _flat([got.ids[0], got.ids[2]])

    async def test_prefix_removes_up_to_the_message_and_never_past_it(self, kit: Harness) -> None:
        if kit.semantics is not Semantics.PREFIX:
            pytest.skip(f"semantics {kit.semantics.name}, not PREFIX")
        async with kit.consumed(3) as got:
            result = await msgdel.delete(got.messages[1], registry=kit.registry)
        assert result.ids == got.ids[1]
        assert (result.semantics, result.outcome) == (Semantics.PREFIX, Outcome.DELETED)
        assert result.removed == len(_flat(got.ids[:2]))
        assert await kit.stored(got.target) == _flat(got.ids[2:])

    async def test_tombstone_writes_the_null_for_the_key_only(self, kit: Harness) -> None:
        if kit.semantics is not Semantics.TOMBSTONE:
            pytest.skip(f"semantics {kit.semantics.name}, not TOMBSTONE")
        async with kit.consumed(3) as got:
            result = await msgdel.delete(got.messages[1], registry=kit.registry)
        assert result.semantics is Semantics.TOMBSTONE
        assert result.outcome in (Outcome.DELETED, Outcome.DEFERRED)
        assert await kit.tombstoned(got.target) == [got.keys[1]]

    async def test_not_stored_sends_nothing(self, kit: Harness) -> None:
        if kit.semantics is not Semantics.NOT_STORED:
            pytest.skip(f"semantics {kit.semantics.name}, not NOT_STORED")
        async with kit.consumed(2) as got:
            results = await msgdel.delete_many(got.messages, registry=kit.registry)
            sent = await _optional(kit.requests, got.target)
        assert {r.semantics for r in results} == {Semantics.NOT_STORED}
        assert {r.outcome for r in results} <= {Outcome.NOTHING_STORED, Outcome.ALREADY_GONE}
        assert all(r.removed == 0 for r in results)
        assert sent in (None, 0)

    async def test_deleting_again_reports_the_repeat_outcome_and_removes_nothing(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(2) as got:
            first = await msgdel.delete(got.messages[0], registry=kit.registry)
            again = await msgdel.delete(got.messages[0], registry=kit.registry)
        repeat = (
            first.outcome if kit.semantics is Semantics.NOT_STORED else kit.adapter.features.repeat
        )
        assert again.outcome is repeat
        assert again.removed == 0
        assert again.ids == first.ids
        if kit.semantics is Semantics.EXACT:
            assert await kit.stored(got.target) == _flat(got.ids[1:])

    # -- by address (features.by_address) -------------------------------------------------
    async def test_by_address_the_named_message_goes_as_its_result_says(self, kit: Harness) -> None:
        async with kit.consumed(3) as got:
            addresses = _addressed(kit, got)
            (result,) = await _delete_at(kit, addresses[1:2])
        ids = _flat(got.ids)
        assert (result.broker, result.ids) == (kit.adapter.features.broker, (ids[1],))
        assert result.target == addresses[1].target
        assert result.semantics is kit.semantics
        _kept_as_promised(result, 1, ids, await kit.stored(got.target))

    async def test_by_address_a_dry_run_sends_nothing(self, kit: Harness) -> None:
        async with kit.consumed(2) as got:
            addresses = _addressed(kit, got)
            results = await _delete_at(kit, addresses, dry_run=True)
        assert [r.outcome for r in results] == [Outcome.SKIPPED] * len(addresses)
        assert await kit.stored(got.target) == _flat(got.ids)

    async def test_by_address_deleting_again_reports_the_repeat_and_removes_nothing(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(2) as got:
            addresses = _addressed(kit, got)
            (first,) = await _delete_at(kit, addresses[:1])
            if first.outcome is not Outcome.DELETED:
                pytest.skip(f"the first deletion was {first.outcome.name}: nothing to repeat")
            (again,) = await _delete_at(kit, addresses[:1])
            (twice, other) = await _delete_at(kit, [addresses[1], addresses[1]])
        # An address cannot tell "deleted before" from "never stored": either is true.
        gone = {kit.adapter.features.repeat, Outcome.ALREADY_GONE, Outcome.NOTHING_STORED}
        assert again.outcome in gone
        assert again.removed == 0
        assert twice.outcome in (Outcome.DELETED, Outcome.DEFERRED)
        if twice.outcome is Outcome.DELETED:  # an equal address is deleted once
            assert (other.outcome, other.removed) == (kit.adapter.features.repeat, 0)

    async def test_by_address_a_stopped_broker_fails_retryably_and_a_retry_deletes(
        self, kit: Harness
    ) -> None:
        if not kit.restartable:
            pytest.skip("the harness cannot stop its broker")
        async with kit.consumed(2) as got:
            addresses = _addressed(kit, got)
            await kit.stop()
            try:
                (failed,) = await _delete_at(kit, addresses[:1], return_exceptions=True)
            finally:
                await kit.start()
            assert isinstance(failed, DeletionFailed), failed
            assert failed.retryable is True
            for _ in range(20):  # the client may need a moment to reconnect
                (retried,) = await _delete_at(kit, addresses[:1], return_exceptions=True)
                if not isinstance(retried, DeletionFailed) or not retried.retryable:
                    break
                await asyncio.sleep(0.25)
        assert isinstance(retried, DeleteResult), retried
        _kept_as_promised(retried, 0, _flat(got.ids), await kit.stored(got.target))

    # -- batches -------------------------------------------------------------------------
    async def test_delete_many_gives_one_result_per_message_in_input_order(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(4) as got:
            order = [3, 0, 2, 1]
            results = await msgdel.delete_many(
                [got.messages[i] for i in order], registry=kit.registry
            )
        assert [r.ids for r in results] == [got.ids[i] for i in order]
        assert all(r.outcome is not Outcome.SKIPPED for r in results)
        if _stores(kit):
            assert await kit.stored(got.target) == []
            assert sum(r.removed for r in results) == len(_flat(got.ids))

    async def test_delete_many_coalesces_its_requests_per_target(self, kit: Harness) -> None:
        if not _stores(kit):
            pytest.skip("nothing stored, nothing sent")
        async with kit.consumed(5) as got:
            before = await _optional(kit.requests, got.target)
            if before is None:
                pytest.skip("the harness cannot count the broker's requests")
            results = await msgdel.delete_many(got.messages, registry=kit.registry)
            sent = await kit.requests(got.target) - before
        if kit.adapter.features.coalesces:  # per broker target (an MQTT topic holds one)
            assert 1 <= sent <= kit.round_trips * len({r.target for r in results})
        else:  # at most one request per stored id (a batch message holds several)
            assert 1 <= sent <= len(_flat(got.ids))

    async def test_one_bad_message_fails_alone_and_the_others_are_deleted(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(2) as got:
            outcomes = await msgdel.delete_many(
                [got.messages[0], kit.hollow(), got.messages[1]],
                registry=kit.registry,
                return_exceptions=True,
            )
        first, bad, last = outcomes
        assert isinstance(bad, MsgdelError)
        assert isinstance(first, DeleteResult)
        assert isinstance(last, DeleteResult)
        assert (first.ids, last.ids) == (got.ids[0], got.ids[1])
        if _stores(kit):
            assert await kit.stored(got.target) == []

    async def test_delete_many_raises_the_first_failure_with_every_outcome(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(1) as got:
            with pytest.raises(MsgdelError) as failed:
                await msgdel.delete_many([kit.hollow(), got.messages[0]], registry=kit.registry)
        outcomes = failed.value.outcomes
        assert outcomes is not None
        assert outcomes[0] is failed.value
        assert isinstance(outcomes[1], DeleteResult)
        assert outcomes[1].ids == got.ids[0]

    # -- refusals and errors -------------------------------------------------------------
    async def test_require_refuses_weaker_semantics_before_any_request(self, kit: Harness) -> None:
        declared = kit.adapter.features.semantics
        stronger = [s for s in Semantics if not declared.satisfies(s)]
        if not stronger:
            pytest.skip(f"{declared.name} satisfies every requirement")
        async with kit.consumed(1) as got:
            before = await _optional(kit.requests, got.target)
            with pytest.raises(UnsupportedDeletion):
                await msgdel.delete(got.messages[0], registry=kit.registry, require=stronger[0])
            with pytest.raises(UnsupportedDeletion):
                await msgdel.delete_many(got.messages, registry=kit.registry, require=stronger[0])
            after = await _optional(kit.requests, got.target)
        assert after == before
        if _stores(kit):
            assert await kit.stored(got.target) == _flat(got.ids)

    async def test_a_message_no_broker_delivered_is_refused_with_a_msgdel_error(
        self, kit: Harness
    ) -> None:
        with pytest.raises(MsgdelError) as refused:
            await msgdel.delete(kit.hollow(), registry=kit.registry)
        if isinstance(refused.value, DeletionFailed):
            assert refused.value.retryable is False

    async def test_a_stopped_broker_fails_retryably_and_a_retry_deletes(self, kit: Harness) -> None:
        if not kit.restartable:
            pytest.skip("the harness cannot stop its broker")
        if not _stores(kit):
            pytest.skip("nothing stored: nothing to fail")
        async with kit.consumed(2) as got:
            await kit.stop()
            try:
                with pytest.raises(DeletionFailed) as failed:
                    await msgdel.delete(got.messages[0], registry=kit.registry)
            finally:
                await kit.start()
            assert failed.value.retryable is True
            result = await _retried(kit, got.messages[0])
        assert result.outcome is Outcome.DELETED
        if kit.semantics is Semantics.EXACT:
            assert await kit.stored(got.target) == _flat(got.ids[1:])

    async def test_the_same_message_twice_in_one_call_is_removed_once_and_counted_once(
        self, kit: Harness
    ) -> None:
        if not _stores(kit):
            pytest.skip("nothing stored: nothing to count")
        async with kit.consumed(2) as got:
            first, again, other = await msgdel.delete_many(
                [got.messages[0], got.messages[0], got.messages[1]],
                registry=kit.registry,
                return_exceptions=True,
            )
        left = await kit.stored(got.target)
        results = [o for o in (first, again, other) if isinstance(o, DeleteResult)]
        assert isinstance(other, DeleteResult)
        assert isinstance(first, DeleteResult) or isinstance(again, DeleteResult)
        removed = len(_flat(got.ids)) - len(left)
        assert sum(r.removed for r in results) == removed  # nothing counted twice
        if kit.semantics is Semantics.EXACT:
            assert left == []

    async def test_a_stopped_broker_fails_all_of_delete_many_retryably_and_a_retry_deletes(
        self, kit: Harness
    ) -> None:
        if not kit.restartable:
            pytest.skip("the harness cannot stop its broker")
        if not _stores(kit):
            pytest.skip("nothing stored: nothing to fail")
        async with kit.consumed(3) as got:
            await kit.stop()
            try:
                outcomes = await msgdel.delete_many(
                    got.messages, registry=kit.registry, return_exceptions=True
                )
            finally:
                await kit.start()
            for outcome in outcomes:
                assert isinstance(outcome, DeletionFailed), outcome
                assert outcome.retryable is True
            retried = [await _retried(kit, m) for m in got.messages]
        left = await kit.stored(got.target)
        assert {r.outcome for r in retried} <= {Outcome.DELETED, kit.adapter.features.repeat}
        if kit.semantics is Semantics.EXACT:
            assert left == []

    async def test_a_batcher_flush_across_a_broker_restart_settles_every_message_truly(
        self, kit: Harness
    ) -> None:
        if not kit.restartable:
            pytest.skip("the harness cannot stop its broker")
        if not _stores(kit):
            pytest.skip("nothing stored: nothing to fail")
        async with kit.consumed(3) as got:
            batcher = msgdel.Batcher(
                kit.registry, max_delay=0, retries=40, backoff=0.1, max_backoff=0.25
            )
            await kit.stop()
            try:
                futures = [await batcher.submit(m) for m in got.messages]
                await asyncio.sleep(0.5)  # the first attempts fail while the broker is down
            finally:
                await kit.start()
            results = await asyncio.gather(*futures)
            await batcher.close()
        left = await kit.stored(got.target)
        # a deletion whose answer was lost is retried and reported as what is true now
        assert {r.outcome for r in results} <= {Outcome.DELETED, kit.adapter.features.repeat}
        if kit.semantics is Semantics.EXACT:
            assert left == []

    # -- FastStream ----------------------------------------------------------------------
    async def test_messages_of_the_in_memory_test_broker_are_skipped(self, kit: Harness) -> None:
        try:
            context = kit.in_memory(2)
        except NotImplementedError:
            pytest.skip("the harness has no in-memory test broker")
        async with context as messages:
            with record_deletions(kit.registry) as deletions:
                results = await msgdel.delete_many(messages, registry=kit.registry)
        assert [r.outcome for r in results] == [Outcome.SKIPPED] * len(messages)
        assert {(r.broker, r.removed) for r in results} == {(kit.adapter.features.broker, 0)}
        assert deletions.messages == list(messages)

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
    async def test_the_middleware_deletes_every_handled_message(
        self, kit: Harness, batched: bool
    ) -> None:
        if not _stores(kit):
            pytest.skip("nothing stored: nothing for the middleware to delete")
        run = _MiddlewareRun(kit, batched)
        handled = await run(20)
        assert await kit.stored(handled.target) == []

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
    async def test_under_manual_ack_the_middleware_deletes_only_what_the_handler_acknowledged(
        self, kit: Harness, batched: bool
    ) -> None:
        if kit.semantics is not Semantics.EXACT:
            pytest.skip(f"semantics {kit.semantics.name}: neighbours are not kept apart")
        if not kit.acknowledgeable:
            pytest.skip("these messages have nothing to acknowledge")

        async def handle(index: int, message: Any) -> None:
            if index == 0:
                await message.ack()

        run = _MiddlewareRun(kit, batched)
        handled = await run(3, handle=handle, ack_policy=AckPolicy.MANUAL)
        assert run.deleted() == {0}
        assert await kit.stored(handled.target) == _flat(handled.ids[1:])

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
    async def test_the_middleware_never_deletes_what_the_handler_nacked_or_rejected(
        self, kit: Harness, batched: bool
    ) -> None:
        if kit.semantics is not Semantics.EXACT:
            pytest.skip(f"semantics {kit.semantics.name}: neighbours are not kept apart")

        async def handle(index: int, message: Any) -> None:
            if index == 0:
                await kit.nack(message)  # every delivery of it: it stays at the broker
            elif index == 1:
                await message.reject()  # the broker drops it, or dead-letters, or keeps it

        run = _MiddlewareRun(kit, batched)
        handled = await run(3, handle=handle)
        assert run.deleted() == {2}
        assert handled.ids[0][0] in await kit.stored(handled.target)

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
    async def test_an_input_whose_result_could_not_be_published_is_kept_and_never_deleted(
        self, kit: Harness, batched: bool
    ) -> None:
        """Two inputs, the subscriber under `AckPolicy.NACK_ON_ERROR` with a publisher of its
        handler's result (`run_app(publishes=True)`), and outside `DeleteMiddleware` a
        middleware under which publishing the second input's result fails, as an unreachable
        output would. FastStream publishes the first's result, and the middleware deletes
        the first; the second's failed publish is an error of its handling, which FastStream
        nacks, so msgdel is never asked to delete it, and it is still stored after the app
        stops.

        After the app stops, per semantics: `EXACT` and `PREFIX` store the second input
        and nothing before it (deleting the first truncated no further); `TOMBSTONE` has
        the first input's key tombstoned only (where the harness reports keys);
        `NOT_STORED` is skipped: nothing is kept either way.

        `NACK_ON_ERROR`, as FastStream's defaults do not keep the input everywhere
        (`REJECT_ON_ERROR` drops a RabbitMQ message or dead-letters it; Kafka's
        `ACK_FIRST` commits before the handler runs). Under it FastStream 0.7 keeps the
        input for redelivery where the broker redelivers: a JetStream or RabbitMQ nack
        redelivers it, a Kafka nack seeks back to it, a Redis stream entry stays pending in
        its group. Where nothing redelivers, the input is kept only in that it stays stored,
        which is what the kit checks everywhere: a Redis stream read without a group
        (FastStream makes it `MANUAL`), a retained MQTT message (a nack sends nothing, the
        topic keeps it), JetStream KV and object-store entries (a watch acknowledges nothing).
        """
        if kit.semantics is Semantics.NOT_STORED:
            pytest.skip("nothing stored: nothing to keep for redelivery")
        run = _MiddlewareRun(kit, batched)
        handled = await run(2, ack_policy=AckPolicy.NACK_ON_ERROR, unpublishable={1})
        assert 1 not in run.deletions_of, "msgdel was asked to delete the unpublished input"
        assert run.deleted() == {0}
        if _stores(kit):
            assert await kit.stored(handled.target) == _flat(handled.ids[1:])
        elif kit.semantics is Semantics.TOMBSTONE and handled.keys:
            assert await kit.tombstoned(handled.target) == handled.keys[:1]

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batched"])
    async def test_the_middleware_does_not_delete_again_what_the_handler_deleted(
        self, kit: Harness, batched: bool
    ) -> None:
        if not _stores(kit):
            pytest.skip("nothing stored: nothing for the middleware to delete")

        async def handle(index: int, message: Any) -> None:
            if index == 0:
                await msgdel.delete(message, registry=kit.registry)

        run = _MiddlewareRun(kit, batched)
        handled = await run(2, handle=handle)
        assert sorted(run.deletions_of) == [0, 1]
        assert [len(run.deletions_of[i]) for i in (0, 1)] == [1, 1]
        assert await kit.stored(handled.target) == []

    # -- observers and lifecycle ---------------------------------------------------------
    async def test_observers_see_every_deletion_once_with_its_result(self, kit: Harness) -> None:
        async with kit.consumed(3) as got:
            with record_deletions(kit.registry) as deletions:
                one = await msgdel.delete(got.messages[0], registry=kit.registry)
                many = await msgdel.delete_many(got.messages[1:], registry=kit.registry)
                async with msgdel.Batcher(kit.registry) as batcher:
                    again = await batcher.delete(got.messages[2])
        assert deletions.messages == [*got.messages, got.messages[2]]
        assert deletions.results == [one, *many, again]

    async def test_closing_is_idempotent_and_a_closed_registry_builds_its_adapters_again(
        self, kit: Harness
    ) -> None:
        async with kit.consumed(2) as got:
            first = await msgdel.delete(got.messages[0], registry=kit.registry)
            await kit.registry.aclose()
            await kit.registry.aclose()
            second = await msgdel.delete(got.messages[1], registry=kit.registry)
            adapter = kit.adapter
            await adapter.aclose()
            await adapter.aclose()
        assert first.outcome is second.outcome


class _MiddlewareRun:
    """Runs [`Harness.run_app`][msgdel.testing.conformance.Harness.run_app] with a
    `DeleteMiddleware` (direct or batched) and records which published indexes msgdel deleted."""

    def __init__(self, kit: Harness, batched: bool) -> None:
        from msgdel.faststream import DeleteMiddleware

        self.kit = kit
        self.batcher = msgdel.Batcher(kit.registry) if batched else None
        self.middleware = DeleteMiddleware(
            batcher=self.batcher, registry=None if batched else kit.registry
        )
        self.index_of: dict[int, int] = {}  # id(message) -> its published index
        self.deletions_of: dict[int, list[Any]] = {}  # index -> the deletions of it
        self._held: list[Any] = []  # keeps handled messages alive, so their ids stay unique

    async def __call__(
        self,
        count: int,
        *,
        handle: Handle | None = None,
        ack_policy: AckPolicy | None = None,
        unpublishable: Collection[int] = (),
    ) -> Consumed:
        """Run the app. With `unpublishable` the subscriber publishes its handler's result
        (`publishes=True`), and publishing it fails for the messages of those indexes."""

        async def tracked(index: int, message: Any) -> None:
            self.index_of[id(message)] = index
            self._held.append(message)
            if handle is not None:
                await handle(index, message)

        async def shutdown() -> None:
            if self.batcher is not None:
                await self.batcher.close()

        middleware: Any = self.middleware
        publishing: dict[str, Any] = {}
        if unpublishable:
            failing = set(unpublishable)
            middleware = (
                _FailingPublish(lambda message: self.index_of.get(id(message)) in failing),
                self.middleware,
            )
            publishing["publishes"] = True
        with record_deletions(self.kit.registry) as deletions:
            try:
                handled = await self.kit.run_app(
                    middleware,
                    count,
                    handle=tracked,
                    ack_policy=ack_policy,
                    on_shutdown=shutdown,
                    **publishing,
                )
            except NotImplementedError:
                pytest.skip("the harness cannot run this FastStream app")
            finally:
                await shutdown()
        for deletion in deletions:
            index = self.index_of.get(id(deletion.message))
            if index is not None:
                self.deletions_of.setdefault(index, []).append(deletion)
        return handled

    def deleted(self) -> set[int]:
        """The indexes msgdel reported as removed (or removable: DEFERRED)."""
        return {
            index
            for index, deletions in self.deletions_of.items()
            if any(
                d.result is not None and d.result.outcome is not Outcome.SKIPPED for d in deletions
            )
        }


class _FailingPublish:
    """A FastStream broker middleware under which publishing the result of a handled message
    fails (`ConnectionError`) when `fails(message)`, as an unreachable output would.
    Publishing outside a handler (`broker.publish`) passes through."""

    def __init__(self, fails: Callable[[Any], bool]) -> None:
        self.fails = fails

    def __call__(self, msg: Any, /, **kwargs: Any) -> BaseMiddleware:
        return _FailingPublishScope(msg, fails=self.fails, **kwargs)


class _FailingPublishScope(BaseMiddleware):  # type: ignore[misc]
    """FastStream enters one per incoming message (`consume_scope` sees the handled
    message) and publishes the handler's result through the same instance; a publish
    outside a handler gets an instance of its own, which handles nothing."""

    def __init__(self, msg: Any, /, *, fails: Callable[[Any], bool], **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self._fails = fails
        self._handled: Any = None

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: Any) -> Any:
        self._handled = msg
        return await call_next(msg)

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        if self._handled is not None and self._fails(self._handled):
            raise ConnectionError("the handler's output is unreachable (the kit's failure)")
        return await call_next(cmd)


async def _retried(kit: Harness, message: object, attempts: int = 20) -> DeleteResult:
    """Delete `message`, retrying as a caller would while the broker says it may succeed."""
    for _ in range(attempts - 1):
        try:
            return await msgdel.delete(message, registry=kit.registry)
        except DeletionFailed as exc:
            if not exc.retryable:
                raise
            await asyncio.sleep(0.25)
    return await msgdel.delete(message, registry=kit.registry)
