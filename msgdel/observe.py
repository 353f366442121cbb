"""The observer seam: every adapter call the core makes is reported here, once.

```python
def audit(report: msgdel.DeletionReport) -> None:
    for result in report.results:
        log.info("deleted %s from %s", result.ids, result.target)

msgdel.default_registry.add_observer(audit)
```

The test helpers ([`msgdel.testing`][msgdel.testing]), metrics and traces are observers. An observer
sees what happened; it never changes it: its exceptions are logged and swallowed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import attrs

from msgdel.features import Features
from msgdel.result import DeleteResult

if TYPE_CHECKING:
    from msgdel.errors import MsgdelError

Operation = Literal["delete", "delete_many", "batch", "delete_at"]
"""Which core call made the adapter call: `msgdel.delete`, `msgdel.delete_many`, a
[`Batcher`][msgdel.Batcher] flush (the middleware uses one of these), or
[`msgdel.delete_at`][msgdel.delete_at] (its `messages` are then addresses)."""


@attrs.frozen
class DeletionReport:
    """One adapter call: what was asked, what each message's outcome was, how long it took."""

    operation: Operation
    adapter: Any
    """The adapter that was called (a [`Deletable`][msgdel.Deletable])."""
    features: Features
    messages: tuple[Any, ...]
    outcomes: tuple[DeleteResult | MsgdelError, ...]
    """One per message, in the same order: its result, or the error it failed with."""
    seconds: float
    """Wall-clock duration of the adapter call."""

    @property
    def results(self) -> list[DeleteResult]:
        """The results of the messages that did not fail."""
        return [o for o in self.outcomes if isinstance(o, DeleteResult)]

    @property
    def errors(self) -> list[MsgdelError]:
        """The errors of the messages that failed."""
        return [o for o in self.outcomes if not isinstance(o, DeleteResult)]


Observer = Callable[[DeletionReport], None]
"""Anything called with every [`DeletionReport`][msgdel.DeletionReport]; it must not block."""
