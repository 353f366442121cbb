"""Small adapters for core tests: real msgdel.Deletable implementations, no broker behind them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from msgdel import BaseAdapter, DeleteResult, Features, Outcome, Semantics


class Note:
    """A message type of the tests' own."""

    def __init__(self, key: str, target: str = "notes") -> None:
        self.key = key
        self.target = target


class SpecialNote(Note):
    """A subclass that has no adapter of its own."""


class DictAdapter(BaseAdapter):
    """Deletes keys from a dict; records every call it gets."""

    def __init__(self, semantics: Semantics = Semantics.EXACT, **stored: bytes) -> None:
        self.features = Features("dict", semantics)
        self.store = dict(stored)
        self.calls: list[tuple[str, list[str]]] = []

    def __repr__(self) -> str:
        return f"DictAdapter({self.semantics.name})"

    async def delete(self, message: Note, /) -> DeleteResult:
        self.calls.append(("delete", [message.key]))
        return self._delete(message)

    async def delete_many(self, messages: Sequence[Note], /) -> list[DeleteResult]:
        self.calls.append(("delete_many", [m.key for m in messages]))
        return [self._delete(m) for m in messages]

    def _delete(self, message: Note) -> DeleteResult:
        removed = int(self.store.pop(message.key, None) is not None)
        outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
        return DeleteResult(
            "dict", message.target, (message.key,), self.semantics, outcome, removed
        )


class BrokenAdapter(BaseAdapter):
    """Fails with a plain exception, as a careless third-party adapter might."""

    features = Features("broken", Semantics.EXACT)

    async def delete(self, message: Any, /) -> DeleteResult:
        raise RuntimeError("socket exploded")

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult]:
        raise RuntimeError("socket exploded")
