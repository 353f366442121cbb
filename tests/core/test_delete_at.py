"""`msgdel.delete_at`: deletion by address, checked before anything is sent, with the
results, errors and observer reports of `delete_many`.

The adapter here keeps its "broker" in a dict, so the core's own rules are seen alone; every
built-in adapter is tested against its real broker in `tests/<backend>/test_addresses.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import attrs
import pytest

import msgdel
from msgdel.address import Address, KafkaOffset, RedisEntry
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion


@attrs.frozen
class Slot(Address):
    broker: ClassVar[str] = "memo"
    schemes: ClassVar[tuple[str, ...]] = ("memo",)

    name: str

    @property
    def target(self) -> str:
        return "slots"

    @property
    def id(self) -> str:
        return self.name


class SlotAdapter(msgdel.BaseAdapter):
    features = msgdel.Features("memo", msgdel.Semantics.EXACT, by_address=True)

    def __init__(self, *names: str, refuse: BaseException | None = None) -> None:
        self.stored = set(names)
        self.refuse = refuse
        self.opened: list[str] = []
        self.closed = 0
        self.calls: list[list[Slot]] = []

    @asynccontextmanager
    async def connect(self, url: str, /) -> AsyncIterator[set[str]]:
        if self.refuse is not None:
            raise self.refuse
        self.opened.append(url)
        try:
            yield self.stored
        finally:
            self.closed += 1

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[msgdel.DeleteResult | MsgdelError]:
        self.calls.append(list(addresses))
        outcomes: list[msgdel.DeleteResult | MsgdelError] = []
        for slot in addresses:
            if slot.name == "bad":
                outcomes.append(NotDeletable("no slot named 'bad'"))
                continue
            found = slot.name in connection
            connection.discard(slot.name)
            outcome = msgdel.Outcome.DELETED if found else msgdel.Outcome.ALREADY_GONE
            outcomes.append(
                msgdel.DeleteResult(
                    "memo", "slots", (slot.name,), self.semantics, outcome, int(found)
                )
            )
        return outcomes


@pytest.fixture
def registry() -> msgdel.Registry:
    registry = msgdel.Registry(builtins=False)
    registry.register(Slot, SlotAdapter("a", "b"))
    return registry


def adapter_of(registry: msgdel.Registry) -> SlotAdapter:
    adapter = registry.resolve(Slot)
    assert isinstance(adapter, SlotAdapter)
    return adapter


async def test_each_address_gets_its_result_in_input_order(registry: msgdel.Registry) -> None:
    results = await msgdel.delete_at("memo://here", [Slot("b"), Slot("x"), Slot("a")],
                                     registry=registry)  # fmt: skip
    assert [(r.ids, r.outcome) for r in results] == [
        (("b",), msgdel.Outcome.DELETED),
        (("x",), msgdel.Outcome.ALREADY_GONE),
        (("a",), msgdel.Outcome.DELETED),
    ]
    assert adapter_of(registry).stored == set()


async def test_a_url_is_connected_once_for_the_call_and_closed_after(
    registry: msgdel.Registry,
) -> None:
    await msgdel.delete_at("memo://here", [Slot("a"), Slot("b")], registry=registry)
    adapter = adapter_of(registry)
    assert adapter.opened == ["memo://here"]
    assert adapter.closed == 1
    assert len(adapter.calls) == 1


async def test_a_client_is_used_as_it_is_and_left_open(registry: msgdel.Registry) -> None:
    client = {"a", "z"}
    (result,) = await msgdel.delete_at(client, [Slot("z")], registry=registry)
    assert result.outcome is msgdel.Outcome.DELETED
    assert client == {"a"}
    assert adapter_of(registry).opened == []


async def test_a_dry_run_sends_nothing_and_says_skipped(registry: msgdel.Registry) -> None:
    results = await msgdel.delete_at("memo://here", [Slot("a")], registry=registry, dry_run=True)
    assert [(r.target, r.ids, r.outcome, r.removed) for r in results] == [
        ("slots", ("a",), msgdel.Outcome.SKIPPED, 0)
    ]
    adapter = adapter_of(registry)
    assert (adapter.opened, adapter.calls, adapter.stored) == ([], [], {"a", "b"})


async def test_an_address_given_twice_is_deleted_once(registry: msgdel.Registry) -> None:
    first, again = await msgdel.delete_at("memo://", [Slot("a"), Slot("a")], registry=registry)
    assert first.outcome is msgdel.Outcome.DELETED
    assert (again.outcome, again.removed) == (msgdel.Outcome.ALREADY_GONE, 0)
    assert adapter_of(registry).calls == [[Slot("a")]]


async def test_a_failed_address_is_raised_with_every_outcome_or_returned_in_place(
    registry: msgdel.Registry,
) -> None:
    with pytest.raises(NotDeletable) as caught:
        await msgdel.delete_at("memo://", [Slot("a"), Slot("bad")], registry=registry)
    assert [type(o).__name__ for o in caught.value.outcomes] == ["DeleteResult", "NotDeletable"]
    outcomes = await msgdel.delete_at(
        "memo://", [Slot("bad"), Slot("b")], registry=registry, return_exceptions=True
    )
    assert isinstance(outcomes[0], NotDeletable)
    assert isinstance(outcomes[1], msgdel.DeleteResult)
    assert outcomes[1].deleted


async def test_observers_see_a_delete_at_report(registry: msgdel.Registry) -> None:
    reports: list[msgdel.DeletionReport] = []
    registry.add_observer(reports.append)
    await msgdel.delete_at("memo://", [Slot("a")], registry=registry)
    (report,) = reports
    assert report.operation == "delete_at"
    assert report.messages == (Slot("a"),)
    assert [r.outcome for r in report.results] == [msgdel.Outcome.DELETED]


async def test_an_unreachable_url_fails_every_address_retryably_without_secrets() -> None:
    registry = msgdel.Registry(builtins=False)
    registry.register(Slot, SlotAdapter("a", refuse=OSError("connection refused")))
    url = "memo://operator:hunter2@127.0.0.1:1"
    outcomes = await msgdel.delete_at(url, [Slot("a"), Slot("b")], registry=registry,
                                      return_exceptions=True)  # fmt: skip
    assert all(isinstance(o, DeletionFailed) and o.retryable for o in outcomes)
    assert "hunter2" not in str(outcomes[0])
    assert "connection refused" in str(outcomes[0])


# -- every argument is checked before anything is sent ----------------------------------


async def test_a_url_of_another_broker_is_refused_naming_the_expected_scheme_without_secrets(
    registry: msgdel.Registry,
) -> None:
    with pytest.raises(ValueError, match="memo://") as caught:
        await msgdel.delete_at("redis://me:hunter2@host", [Slot("a")], registry=registry)
    assert "hunter2" not in str(caught.value)
    assert adapter_of(registry).calls == []


async def test_a_rabbitmq_url_says_why_rabbitmq_has_no_addresses() -> None:
    with pytest.raises(UnsupportedDeletion, match="consuming and settling"):
        await msgdel.delete_at("amqp://guest:guest@localhost/", [RedisEntry("s", "1-0")])


async def test_one_address_instead_of_a_list_says_to_pass_a_list() -> None:
    with pytest.raises(TypeError, match=r"pass a list: delete_at\(connection, \[address\]\)"):
        await msgdel.delete_at("redis://localhost", RedisEntry("s", "1-0"))  # type: ignore[arg-type]


async def test_text_instead_of_an_address_says_to_parse_it() -> None:
    with pytest.raises(TypeError, match=r"addresses\[0\] is a str.*RedisEntry.parse"):
        await msgdel.delete_at("redis://localhost", ["orders:1-0"])  # type: ignore[list-item]


async def test_addresses_of_two_brokers_in_one_call_are_refused() -> None:
    with pytest.raises(ValueError, match="one broker per call"):
        await msgdel.delete_at(
            "redis://localhost", [RedisEntry("s", "1-0"), KafkaOffset("t", 0, 1)]
        )


async def test_no_connection_is_refused() -> None:
    with pytest.raises(TypeError, match="broker URL or a connected client"):
        await msgdel.delete_at(None, [RedisEntry("s", "1-0")])


async def test_an_adapter_that_does_not_delete_by_address_is_refused() -> None:
    class MessagesOnly(msgdel.BaseAdapter):
        features = msgdel.Features("memo", msgdel.Semantics.EXACT)

    with pytest.raises(UnsupportedDeletion, match="does not delete by address"):
        await msgdel.delete_at("memo://", [Slot("a")], adapter=MessagesOnly())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="by_address=True"):
        msgdel.Registry(builtins=False).register(Slot, MessagesOnly())


async def test_require_is_checked_against_the_address_adapter(registry: msgdel.Registry) -> None:
    class Prefix(SlotAdapter):
        features = msgdel.Features("memo", msgdel.Semantics.PREFIX, by_address=True)

    with pytest.raises(UnsupportedDeletion, match="require=EXACT"):
        await msgdel.delete_at(
            "memo://", [Slot("a")], adapter=Prefix(), require=msgdel.Semantics.EXACT
        )


async def test_an_address_passed_to_delete_says_to_use_delete_at() -> None:
    with pytest.raises(TypeError, match=r"msgdel.delete_at\(url_or_client, \[address\]\)"):
        await msgdel.delete(RedisEntry("s", "1-0"))
    with pytest.raises(TypeError, match="delete_at"):
        await msgdel.delete_many([RedisEntry("s", "1-0")])


async def test_no_addresses_send_nothing(registry: msgdel.Registry) -> None:
    assert await msgdel.delete_at("memo://", [], registry=registry) == []
    assert adapter_of(registry).opened == []
