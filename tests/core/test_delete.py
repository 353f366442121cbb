"""msgdel.delete and msgdel.delete_many over any adapter."""

from __future__ import annotations

import subprocess
import sys

import pytest

import msgdel
from msgdel import (
    AdapterNotFound,
    DeleteResult,
    DeletionFailed,
    Outcome,
    Registry,
    Semantics,
    UnsupportedDeletion,
)
from tests.core.adapters import BrokenAdapter, DictAdapter, Note, SpecialNote


def registry_with(**adapters: DictAdapter) -> Registry:
    registry = Registry(builtins=False)
    for name, adapter in adapters.items():
        registry.register({"note": Note, "special": SpecialNote}[name], adapter)
    return registry


async def test_delete_returns_what_the_adapter_did() -> None:
    adapter = DictAdapter(a=b"1")
    result = await msgdel.delete(Note("a"), registry=registry_with(note=adapter))
    assert result == DeleteResult("dict", "notes", ("a",), Semantics.EXACT, Outcome.DELETED, 1)
    assert adapter.store == {}


async def test_delete_many_returns_results_in_input_order_and_groups_by_adapter() -> None:
    plain, special = DictAdapter(a=b"1", c=b"3"), DictAdapter(b=b"2")
    registry = registry_with(note=plain, special=special)

    results = await msgdel.delete_many(
        [Note("a"), SpecialNote("b"), Note("c"), Note("zz")], registry=registry
    )

    assert [r.ids for r in results] == [("a",), ("b",), ("c",), ("zz",)]
    assert [r.outcome for r in results] == [Outcome.DELETED] * 3 + [Outcome.ALREADY_GONE]
    assert plain.calls == [("delete_many", ["a", "c", "zz"])]
    assert special.calls == [("delete_many", ["b"])]


async def test_delete_many_of_nothing_returns_nothing() -> None:
    assert await msgdel.delete_many([], registry=Registry(builtins=False)) == []


@pytest.mark.parametrize(
    ("required", "adapter_semantics", "accepted"),
    [
        (Semantics.EXACT, Semantics.EXACT, True),
        (Semantics.EXACT, Semantics.NOT_STORED, True),
        (Semantics.EXACT, Semantics.PREFIX, False),
        (Semantics.EXACT, Semantics.TOMBSTONE, False),
        (Semantics.PREFIX, Semantics.PREFIX, True),
        (Semantics.PREFIX, Semantics.TOMBSTONE, False),
        (Semantics.TOMBSTONE, Semantics.TOMBSTONE, True),
        (Semantics.TOMBSTONE, Semantics.PREFIX, True),
    ],
)
async def test_require_refuses_weaker_semantics_before_any_io(
    required: Semantics, adapter_semantics: Semantics, accepted: bool
) -> None:
    adapter = DictAdapter(adapter_semantics, a=b"1")
    registry = registry_with(note=adapter)
    if accepted:
        await msgdel.delete(Note("a"), registry=registry, require=required)
        assert adapter.store == {}
    else:
        with pytest.raises(UnsupportedDeletion, match="nothing was sent"):
            await msgdel.delete(Note("a"), registry=registry, require=required)
        with pytest.raises(UnsupportedDeletion):
            await msgdel.delete_many([Note("a")], registry=registry, require=required)
        assert adapter.calls == []
        assert adapter.store == {"a": b"1"}


async def test_delete_many_checks_every_adapter_before_deleting_anything() -> None:
    exact, prefix = DictAdapter(Semantics.EXACT, a=b"1"), DictAdapter(Semantics.PREFIX, b=b"2")
    registry = registry_with(note=exact, special=prefix)
    with pytest.raises(UnsupportedDeletion):
        await msgdel.delete_many(
            [Note("a"), SpecialNote("b")], registry=registry, require=Semantics.EXACT
        )
    assert exact.calls == prefix.calls == []


async def test_a_non_message_object_gets_adapter_not_found() -> None:
    with pytest.raises(AdapterNotFound, match=r"builtins.object"):
        await msgdel.delete(object())


async def test_an_adapter_raising_a_plain_exception_becomes_deletion_failed() -> None:
    registry = Registry(builtins=False)
    registry.register(Note, BrokenAdapter())
    with pytest.raises(DeletionFailed, match="socket exploded") as caught:
        await msgdel.delete(Note("a"), registry=registry)
    assert caught.value.retryable is False
    assert isinstance(caught.value.cause, RuntimeError)


async def test_one_failing_group_does_not_stop_the_others() -> None:
    working = DictAdapter(a=b"1")
    registry = Registry(builtins=False)
    registry.register(Note, working)
    registry.register(SpecialNote, BrokenAdapter())
    with pytest.raises(DeletionFailed):
        await msgdel.delete_many([SpecialNote("x"), Note("a")], registry=registry)
    assert working.store == {}


def test_importing_msgdel_imports_no_broker_client() -> None:
    code = (
        "import sys, msgdel\n"
        "clients = ['redis', 'aio_pika', 'aiormq', 'aiokafka', 'confluent_kafka', 'nats', "
        "'zmqtt', 'faststream.redis', 'faststream.kafka']\n"
        "print([c for c in clients if c in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_error_text_never_holds_a_url_password() -> None:
    error = DeletionFailed(
        "could not reach amqp://guest:s3cret@rabbit:5672/ or redis://:tok@r:6379/0",
        retryable=True,
    )
    assert "s3cret" not in str(error)
    assert "tok@" not in str(error)
    assert "amqp://***@rabbit:5672/" in str(error)


def test_results_are_immutable_and_hold_ids_as_strings() -> None:
    result = DeleteResult("redis", "s", [b"1-0", 7], Semantics.EXACT, Outcome.DELETED, 1)
    assert result.ids == ("1-0", "7")
    with pytest.raises(AttributeError):
        result.removed = 2  # type: ignore[misc]
