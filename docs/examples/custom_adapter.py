"""An adapter of your own: deletes messages of your own type from an in-memory store.

``python docs/examples/custom_adapter.py`` deletes through a registry of its own and checks
each outcome; it needs no broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgdel
from msgdel import DeleteResult, Features, MsgdelError, NotDeletable, Outcome, Semantics


class AuditedMessage:
    """A message type of your own, e.g. produced by a custom FastStream parser."""

    def __init__(self, key: str | None) -> None:
        self.key = key


class AuditStoreAdapter(msgdel.BaseAdapter):
    features = Features("audit", Semantics.EXACT)

    def __init__(self) -> None:
        self.store = {"a": b"1", "b": b"2"}

    async def delete_many(
        self, messages: Sequence[AuditedMessage], /
    ) -> list[DeleteResult | MsgdelError]:
        outcomes: list[DeleteResult | MsgdelError] = []
        for message in messages:
            if not isinstance(message.key, str):
                outcomes.append(NotDeletable(f"{message!r} has no key; nothing was deleted"))
                continue
            removed = int(self.store.pop(message.key, None) is not None)
            outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
            outcomes.append(
                DeleteResult("audit", "store", (message.key,), Semantics.EXACT, outcome, removed)
            )
        return outcomes


registry = msgdel.Registry(builtins=False)
registry.register(AuditedMessage, AuditStoreAdapter())


async def main() -> None:
    result = await msgdel.delete(AuditedMessage("a"), registry=registry)
    assert result.outcome is Outcome.DELETED
    again = await msgdel.delete(AuditedMessage("a"), registry=registry)
    assert again.outcome is Outcome.ALREADY_GONE
    first, second = await msgdel.delete_many(
        [AuditedMessage("b"), AuditedMessage(None)], registry=registry, return_exceptions=True
    )
    assert isinstance(first, DeleteResult)
    assert first.outcome is Outcome.DELETED
    assert isinstance(second, NotDeletable)  # the other message is deleted all the same
    print(
        f"a: {result.outcome.value}, a again: {again.outcome.value}, "
        f"b: {first.outcome.value}, no key: {type(second).__name__}"
    )


if __name__ == "__main__":
    asyncio.run(main())
