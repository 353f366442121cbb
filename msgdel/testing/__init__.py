"""Assert, in a user's tests, which messages were asked to be deleted.

Under FastStream's in-memory test brokers (``TestRedisBroker`` and the others) the adapters
send nothing and return ``Outcome.SKIPPED``; :func:`record_deletions` keeps what was asked:

.. code-block:: python

    with msgdel.testing.record_deletions() as deletions:
        async with TestRedisBroker(broker) as br:
            await br.publish("hello", stream="orders")
    assert deletions.bodies == [b"hello"]

The pytest plugin :mod:`msgdel.testing.pytest_plugin` offers the same as the
``msgdel_deletions`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, overload

import attrs

from msgdel.protocol import Deletable
from msgdel.registry import Registry, default_registry
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

__all__ = ["Deletion", "Deletions", "record_deletions"]


@attrs.frozen
class Deletion:
    """One message that was asked to be deleted, with what the adapter said."""

    message: Any
    result: DeleteResult | None
    error: BaseException | None = None

    @property
    def body(self) -> Any:
        """The message's raw body (``message.body``), or None when it has none."""
        return getattr(self.message, "body", None)


class Deletions(Sequence[Deletion]):
    """The deletions asked for while recording, in the order the adapters received them."""

    def __init__(self) -> None:
        self._items: list[Deletion] = []

    @overload
    def __getitem__(self, index: int) -> Deletion: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Deletion]: ...
    def __getitem__(self, index: int | slice) -> Deletion | Sequence[Deletion]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    @property
    def messages(self) -> list[Any]:
        return [d.message for d in self._items]

    @property
    def bodies(self) -> list[Any]:
        """Raw bodies (bytes for most brokers) of the messages asked to be deleted."""
        return [d.body for d in self._items]

    @property
    def results(self) -> list[DeleteResult]:
        return [d.result for d in self._items if d.result is not None]

    @property
    def skipped(self) -> list[Deletion]:
        """Deletions that sent nothing (in-memory test broker messages)."""
        return [
            d for d in self._items if d.result is not None and d.result.outcome is Outcome.SKIPPED
        ]

    def clear(self) -> None:
        self._items.clear()

    def _add(self, deletion: Deletion) -> None:
        self._items.append(deletion)

    def __repr__(self) -> str:
        return f"<msgdel.testing.Deletions {self.bodies!r}>"


class _Recording:
    """Wraps an adapter: forwards every call and records what was asked and answered."""

    def __init__(self, adapter: Deletable, deletions: Deletions) -> None:
        self._adapter = adapter
        self._deletions = deletions
        self.semantics: Semantics = adapter.semantics

    async def delete(self, message: Any, /) -> DeleteResult:
        try:
            result = await self._adapter.delete(message)
        except Exception as exc:
            self._deletions._add(Deletion(message, None, exc))
            raise
        self._deletions._add(Deletion(message, result))
        return result

    async def delete_many(self, messages: Sequence[Any], /) -> Sequence[DeleteResult]:
        try:
            results = await self._adapter.delete_many(messages)
        except Exception as exc:
            for message in messages:
                self._deletions._add(Deletion(message, None, exc))
            raise
        for message, result in zip(messages, results, strict=False):
            self._deletions._add(Deletion(message, result))
        return results

    def __repr__(self) -> str:
        return f"<recording {self._adapter!r}>"


@contextmanager
def record_deletions(registry: Registry | None = None) -> Iterator[Deletions]:
    """Record every deletion resolved through ``registry`` (default: the default registry).

    Covers ``msgdel.delete``, ``delete_many``, ``Batcher``, ``DeleteMiddleware`` and the
    ``Deleter`` dependency using that registry. The adapters still run: messages of
    FastStream's in-memory test brokers give ``Outcome.SKIPPED``, and real messages are
    really deleted. Recording contexts may nest; each sees every deletion inside it.
    """
    reg = registry if registry is not None else default_registry
    deletions = Deletions()
    wrappers: dict[int, tuple[Deletable, _Recording]] = {}
    had_own = "resolve" in vars(reg)
    previous = reg.resolve

    def resolve(message_type: type) -> Deletable:
        adapter = previous(message_type)
        entry = wrappers.get(id(adapter))
        if entry is None:
            entry = wrappers[id(adapter)] = (adapter, _Recording(adapter, deletions))
        return entry[1]

    reg.resolve = resolve  # type: ignore[method-assign]
    try:
        yield deletions
    finally:
        if had_own:
            reg.resolve = previous  # type: ignore[method-assign]
        else:
            del reg.resolve
