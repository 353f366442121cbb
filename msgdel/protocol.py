"""The interface every adapter satisfies, and a base class that implements the routine parts."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from msgdel.errors import UnsupportedDeletion
from msgdel.features import Features
from msgdel.semantics import Semantics

if TYPE_CHECKING:
    from types import TracebackType

    from msgdel.errors import MsgdelError
    from msgdel.result import DeleteResult


@runtime_checkable
class Deletable(Protocol):
    """A per-broker adapter: deletes a batch of messages with its broker's native operation.

    `features` declares what it does ([`Features`][msgdel.Features]). `delete_many` returns
    one entry per message, in input order: the message's [`DeleteResult`][msgdel.DeleteResult], or
    the [`MsgdelError`][msgdel.MsgdelError] that message alone failed with, so one failing target
    does not hide what happened to the others. It may also raise one error for the whole
    batch when nothing in it can have been deleted. `aclose` releases what the adapter
    opened; it is idempotent.
    """

    features: Features

    async def delete(self, message: Any, /) -> DeleteResult: ...

    async def delete_many(
        self, messages: Sequence[Any], /
    ) -> Sequence[DeleteResult | MsgdelError]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AddressDeletable(Deletable, Protocol):
    """An adapter that also deletes by [address][msgdel.address.Address] (`features.by_address`).

    `connect(url)` opens a client for [`delete_at`][msgdel.delete_at] and closes it on exit;
    `delete_at(connection, addresses)` deletes on that client (or on one the caller passed)
    with the same code and the same result rules as `delete_many`: one entry per address, in
    input order, a [`DeleteResult`][msgdel.DeleteResult] or the
    [`MsgdelError`][msgdel.MsgdelError] that address alone failed with.
    """

    def connect(self, url: str, /) -> AbstractAsyncContextManager[Any]: ...

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> Sequence[DeleteResult | MsgdelError]: ...


class BaseAdapter:
    """A base for adapters: set `features`, implement `delete_many`; `delete` and the
    lifecycle come from here.

    ```python
    class MyAdapter(msgdel.BaseAdapter):
        features = msgdel.Features(broker="mine", semantics=msgdel.Semantics.EXACT)

        async def delete_many(self, messages):
            ...  # one round trip; a DeleteResult or a MsgdelError per message
    ```
    """

    features: Features

    @property
    def semantics(self) -> Semantics:
        """`features.semantics`."""
        return self.features.semantics

    async def delete(self, message: Any, /) -> DeleteResult:
        """Delete one message through [`delete_many`][msgdel.BaseAdapter.delete_many]; raise its
        error if it failed."""
        (outcome,) = await self.delete_many([message])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def delete_many(self, messages: Sequence[Any], /) -> Sequence[DeleteResult | MsgdelError]:
        """Delete `messages`: one entry per message, in input order."""
        raise NotImplementedError

    def connect(self, url: str, /) -> AbstractAsyncContextManager[Any]:
        """A client for `url`, closed on exit; only adapters with `features.by_address`."""
        raise UnsupportedDeletion(f"{self!r} does not delete by address")

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> Sequence[DeleteResult | MsgdelError]:
        """Delete `addresses` on `connection`: one entry per address, in input order."""
        raise UnsupportedDeletion(f"{self!r} does not delete by address")

    async def aclose(self) -> None:
        """Release what the adapter opened. Nothing to release here."""

    async def __aenter__(self) -> BaseAdapter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
