"""Assert, in a user's tests, which messages were asked to be deleted.

Under FastStream's in-memory test brokers (`TestRedisBroker` and the others) the adapters
send nothing and return `Outcome.SKIPPED`; [`record_deletions`][msgdel.testing.record_deletions]
keeps what was asked:

```python
with msgdel.testing.record_deletions() as deletions:
    async with TestRedisBroker(broker) as br:
        await br.publish("hello", stream="orders")
assert deletions.bodies == [b"hello"]
```

The pytest plugin [`msgdel.testing.pytest_plugin`][msgdel.testing.pytest_plugin] offers the same as
the `msgdel_deletions` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, overload

import attrs

from msgdel.observe import DeletionReport
from msgdel.registry import Registry, default_registry
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome

__all__ = ["Deletion", "Deletions", "record_deletions"]


@attrs.frozen
class Deletion:
    """One message that was asked to be deleted, with what the adapter said."""

    message: Any
    result: DeleteResult | None
    error: BaseException | None = None

    @property
    def body(self) -> Any:
        """The message's raw body (`message.body`), or None when it has none."""
        return getattr(self.message, "body", None)


class Deletions(Sequence[Deletion]):
    """The deletions asked for while recording, in the order the broker answered them."""

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


@contextmanager
def record_deletions(registry: Registry | None = None) -> Iterator[Deletions]:
    """Record every deletion made through `registry` (default: the default registry).

    Covers `msgdel.delete`, `delete_many`, `Batcher`, `DeleteMiddleware` and the
    `Deleter` dependency using that registry. It is an observer
    ([`msgdel.Registry.add_observer`][msgdel.Registry.add_observer]): the adapters run exactly as
    without it, so messages of FastStream's in-memory test brokers give `Outcome.SKIPPED` and real
    messages are really deleted. Recording contexts may nest; each sees every deletion
    inside it.
    """
    reg = registry if registry is not None else default_registry
    deletions = Deletions()

    def observe(report: DeletionReport) -> None:
        for message, outcome in zip(report.messages, report.outcomes):
            if isinstance(outcome, DeleteResult):
                deletions._add(Deletion(message, outcome))
            else:
                deletions._add(Deletion(message, None, outcome))

    reg.add_observer(observe)
    try:
        yield deletions
    finally:
        reg.remove_observer(observe)
