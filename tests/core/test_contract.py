"""The adapter contract v2: declared features, per-message outcomes, lifecycle, observers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import pytest

import msgdel
from msgdel import (
    BaseAdapter,
    DeleteResult,
    DeletionFailed,
    DeletionReport,
    Features,
    MsgdelError,
    NotDeletable,
    Outcome,
    Registry,
    Semantics,
)
from tests.core.adapters import DictAdapter, Note


class PartlyFailing(DictAdapter):
    """Reports a per-message error for every key starting with ``bad``."""

    async def delete_many(self, messages: Sequence[Note], /) -> list[DeleteResult | MsgdelError]:
        self.calls.append(("delete_many", [m.key for m in messages]))
        return [
            NotDeletable(f"{m.key} cannot be addressed")
            if m.key.startswith("bad")
            else self._delete(m)
            for m in messages
        ]


class Closing(BaseAdapter):
    """Counts how often it was closed."""

    features = Features("closing", Semantics.EXACT, closes=True)
    instances: ClassVar[list[Closing]] = []

    def __init__(self) -> None:
        self.closed = 0
        Closing.instances.append(self)

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        return [DeleteResult("closing", "t", ("1",), Semantics.EXACT, Outcome.DELETED, 1)]

    async def aclose(self) -> None:
        self.closed += 1


def registry_of(adapter: Any) -> Registry:
    registry = Registry(builtins=False)
    registry.register(Note, adapter)
    return registry


# -- features ------------------------------------------------------------------------------
def test_features_are_an_immutable_validated_value() -> None:
    features = Features("redis", Semantics.EXACT, acknowledges=True)
    assert (features.closes, features.coalesces, features.repeat) == (
        False,
        True,
        Outcome.ALREADY_GONE,
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        features.acknowledges = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        Features("redis", "exact")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="broker"):
        Features("", Semantics.EXACT)


def test_the_base_class_exposes_the_declared_semantics() -> None:
    assert DictAdapter(Semantics.PREFIX).semantics is Semantics.PREFIX


@pytest.mark.parametrize(
    ("adapter", "says"),
    [
        (DictAdapter, "is a class: register an instance"),
        (object(), "lacks features, delete, delete_many, aclose"),
    ],
)
def test_registering_what_is_not_an_adapter_instance_says_what_to_do(
    adapter: Any, says: str
) -> None:
    with pytest.raises(TypeError, match=says):
        Registry(builtins=False).register(Note, adapter)


def test_an_adapter_whose_methods_are_not_coroutines_is_refused_at_registration() -> None:
    class Blocking(BaseAdapter):
        features = Features("blocking", Semantics.EXACT)

        def delete_many(self, messages: Sequence[Any], /) -> list[Any]:  # type: ignore[override]
            return []

    with pytest.raises(TypeError, match=r"delete_many must be an async method"):
        Registry(builtins=False).register(Note, Blocking())


def test_an_adapter_declaring_features_of_the_wrong_type_is_refused() -> None:
    class Undeclared(BaseAdapter):
        features = ("semantics", "exact")  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"features must be a msgdel.Features"):
        Registry(builtins=False).register(Note, Undeclared())


# -- per-message outcomes ------------------------------------------------------------------
async def test_one_failing_message_does_not_hide_the_others_results() -> None:
    adapter = PartlyFailing(a=b"1", c=b"3")
    registry = registry_of(adapter)

    outcomes = await msgdel.delete_many(
        [Note("a"), Note("bad"), Note("c")], registry=registry, return_exceptions=True
    )

    assert isinstance(outcomes[1], NotDeletable)
    assert [o.outcome for o in outcomes if isinstance(o, DeleteResult)] == [Outcome.DELETED] * 2
    assert adapter.store == {}


async def test_without_return_exceptions_the_first_failure_carries_every_outcome() -> None:
    adapter = PartlyFailing(a=b"1", c=b"3")
    with pytest.raises(NotDeletable) as failed:
        await msgdel.delete_many(
            [Note("a"), Note("bad1"), Note("bad2"), Note("c")], registry=registry_of(adapter)
        )
    assert "bad1" in str(failed.value)
    outcomes = failed.value.outcomes
    assert outcomes is not None
    assert [type(o).__name__ for o in outcomes] == [
        "DeleteResult",
        "NotDeletable",
        "NotDeletable",
        "DeleteResult",
    ]
    assert adapter.store == {}  # the completed deletions are not lost, only reported


async def test_delete_raises_the_error_the_adapter_reported_for_the_message() -> None:
    with pytest.raises(NotDeletable, match="bad cannot be addressed"):
        await msgdel.delete(Note("bad"), registry=registry_of(PartlyFailing()))


@pytest.mark.parametrize(
    ("returned", "says"),
    [
        (None, "returned NoneType, not a list"),
        ([], "returned 0 outcomes for 1 messages"),
        (["deleted"], "returned 'deleted' among its outcomes"),
    ],
)
async def test_an_adapter_breaking_the_protocol_fails_with_what_it_returned(
    returned: Any, says: str
) -> None:
    class Broken(BaseAdapter):
        features = Features("broken", Semantics.EXACT)

        async def delete_many(self, messages: Sequence[Any], /) -> Any:
            return returned

    with pytest.raises(DeletionFailed, match=says) as failed:
        await msgdel.delete(Note("a"), registry=registry_of(Broken()))
    assert failed.value.retryable is False
    assert "unknown" in str(failed.value)


@pytest.mark.parametrize("require", ["EXACT", "exact", 1])
async def test_require_of_the_wrong_type_is_a_type_error_before_any_io(require: Any) -> None:
    adapter = DictAdapter(a=b"1")
    with pytest.raises(TypeError, match=r"require must be a msgdel\.Semantics"):
        await msgdel.delete(Note("a"), registry=registry_of(adapter), require=require)
    with pytest.raises(TypeError, match=r"require must be a msgdel\.Semantics"):
        await msgdel.delete_many([Note("a")], registry=registry_of(adapter), require=require)
    assert adapter.calls == []


async def test_a_string_require_names_the_member_to_use() -> None:
    with pytest.raises(TypeError, match=r"use msgdel.Semantics.EXACT"):
        await msgdel.delete(Note("a"), registry=registry_of(DictAdapter()), require="exact")  # type: ignore[arg-type]


@pytest.mark.parametrize("messages", [b"body", "body", Note("a"), 3])
async def test_delete_many_of_something_not_a_list_of_messages_says_to_use_delete(
    messages: Any,
) -> None:
    with pytest.raises(TypeError, match=r"msgdel.delete\(message\)"):
        await msgdel.delete_many(messages, registry=registry_of(DictAdapter()))


async def test_a_registry_that_is_not_a_registry_is_refused() -> None:
    with pytest.raises(TypeError, match=r"registry must be a msgdel\.Registry"):
        await msgdel.delete(Note("a"), registry={})  # type: ignore[arg-type]


# -- observers -----------------------------------------------------------------------------
async def test_observers_get_one_report_per_adapter_call_with_every_outcome() -> None:
    adapter = PartlyFailing(a=b"1", b=b"2", c=b"3")
    registry = registry_of(adapter)
    reports: list[DeletionReport] = []
    registry.add_observer(reports.append)

    await msgdel.delete(Note("a"), registry=registry)
    await msgdel.delete_many([Note("b"), Note("bad")], registry=registry, return_exceptions=True)
    async with msgdel.Batcher(registry) as batcher:
        await batcher.delete(Note("c"))

    assert [r.operation for r in reports] == ["delete", "delete_many", "batch"]
    assert [[m.key for m in r.messages] for r in reports] == [["a"], ["b", "bad"], ["c"]]
    assert reports[1].features is adapter.features
    assert [len(r.results) for r in reports] == [1, 1, 1]
    assert isinstance(reports[1].errors[0], NotDeletable)
    assert all(r.seconds >= 0 for r in reports)


async def test_an_observer_that_raises_changes_nothing_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = DictAdapter(a=b"1")
    registry = registry_of(adapter)

    def explode(report: DeletionReport) -> None:
        raise RuntimeError("observer bug")

    registry.add_observer(explode)
    with caplog.at_level(logging.ERROR, logger="msgdel.observe"):
        result = await msgdel.delete(Note("a"), registry=registry)
    assert result.outcome is Outcome.DELETED
    assert "observer bug" in caplog.text


def test_removing_an_observer_stops_its_reports_and_unknown_ones_are_refused() -> None:
    registry = Registry(builtins=False)
    seen: list[DeletionReport] = []
    registry.add_observer(seen.append)
    registry.remove_observer(seen.append)
    assert registry.observers == ()
    with pytest.raises(ValueError, match="not an observer"):
        registry.remove_observer(seen.append)
    with pytest.raises(TypeError, match="callable"):
        registry.add_observer("print")  # type: ignore[arg-type]


async def test_recording_does_not_wrap_the_adapter() -> None:
    adapter = DictAdapter(a=b"1")
    registry = registry_of(adapter)
    with msgdel.testing.record_deletions(registry) as deletions:
        assert registry.resolve(Note) is adapter  # what the middleware reads features from
        await msgdel.delete(Note("a"), registry=registry)
    assert [d.result.outcome for d in deletions if d.result] == [Outcome.DELETED]
    assert registry.observers == ()


# -- lifecycle -----------------------------------------------------------------------------
async def test_a_registry_closes_the_builtin_adapters_it_built_once_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from msgdel import adapters

    builtin = adapters.BuiltinAdapter("tests.core.test_contract", "Closing", "core", "tests")
    monkeypatch.setitem(adapters.BUILTINS, f"{Note.__module__}.{Note.__qualname__}", builtin)
    Closing.instances.clear()
    async with Registry() as registry:
        await msgdel.delete(Note("a"), registry=registry)
        await msgdel.delete(Note("b"), registry=registry)
    (built,) = Closing.instances
    assert built.closed == 1

    await registry.aclose()  # idempotent: nothing left to close
    assert built.closed == 1
    await msgdel.delete(Note("c"), registry=registry)  # a closed registry builds anew
    assert len(Closing.instances) == 2


async def test_a_registry_leaves_the_adapters_registered_by_the_user_open() -> None:
    adapter = Closing()
    async with Registry(builtins=False) as registry:
        registry.register(Note, adapter)
        await msgdel.delete(Note("a"), registry=registry)
    assert adapter.closed == 0


async def test_the_base_adapter_is_an_async_context_manager_closing_itself() -> None:
    adapter = Closing()
    async with adapter as entered:
        assert entered is adapter
    assert adapter.closed == 1


async def test_a_message_given_twice_is_sent_once_and_its_repeat_reports_the_repeat_outcome() -> (
    None
):
    adapter = DictAdapter(a=b"1", b=b"2")
    registry = registry_of(adapter)
    a, b = Note("a"), Note("b")
    with msgdel.testing.record_deletions(registry) as deletions:
        results = await msgdel.delete_many([a, b, a], registry=registry)
    assert adapter.calls == [("delete_many", ["a", "b"])]
    assert [(r.ids, r.outcome, r.removed) for r in results] == [
        (("a",), Outcome.DELETED, 1),
        (("b",), Outcome.DELETED, 1),
        (("a",), Outcome.ALREADY_GONE, 0),
    ]
    assert deletions.messages == [a, b, a]
