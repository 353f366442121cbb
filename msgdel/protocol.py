"""The interface every adapter satisfies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from msgdel.result import DeleteResult
from msgdel.semantics import Semantics


@runtime_checkable
class Deletable(Protocol):
    """A per-broker adapter: deletes one message, or a batch, with its broker's native operation.

    ``semantics`` declares what a delete does at the broker. ``delete_many`` returns one
    result per message, in input order, and should cost one round trip per broker target.
    """

    semantics: Semantics

    async def delete(self, message: Any, /) -> DeleteResult: ...

    async def delete_many(self, messages: Sequence[Any], /) -> Sequence[DeleteResult]: ...
