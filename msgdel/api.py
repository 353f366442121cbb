"""`delete`, `delete_many` and `delete_at`: one call, whatever the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NoReturn, overload

from typing_extensions import deprecated

from msgdel import _check, _dispatch
from msgdel.address import Address
from msgdel.errors import MsgdelError
from msgdel.result import DeleteResult
from msgdel.semantics import Semantics

if TYPE_CHECKING:
    from msgdel.protocol import AddressDeletable
    from msgdel.registry import Registry

Body = bytes | bytearray | memoryview | str | int | float | dict[Any, Any] | None
"""What FastStream decodes a message body into: passing one where a message is expected is a
type error for checkers that report deprecated calls (mypy: `enable_error_code = deprecated`;
pyright: `reportDeprecated`), and an [`AdapterNotFound`][msgdel.AdapterNotFound] at run time."""


@overload
@deprecated("pass the FastStream message (msg: RedisStreamMessage, ...), not its body")
async def delete(
    message: Body, *, registry: Registry | None = ..., require: Semantics | None = ...
) -> NoReturn: ...
@overload
async def delete(
    message: object, *, registry: Registry | None = ..., require: Semantics | None = ...
) -> DeleteResult: ...
async def delete(
    message: Any, *, registry: Registry | None = None, require: Semantics | None = None
) -> DeleteResult:
    """Delete one consumed FastStream message at its broker and say what the broker did.

    `require` refuses, before any I/O, an adapter whose semantics do not satisfy it
    (see [`Semantics.satisfies`][msgdel.Semantics.satisfies]). Every failure is a
    [`MsgdelError`][msgdel.MsgdelError].
    """
    reg = _dispatch.registry_of(registry)
    adapter = _dispatch.resolve(reg, message, _dispatch.check_require(require))
    _dispatch.note_requested((message,))
    (outcome,) = await _dispatch.call(reg, adapter, [message], "delete")
    return _dispatch.raise_for(outcome)


@overload
@deprecated("pass the FastStream messages, not their decoded bodies")
async def delete_many(
    messages: Iterable[Body],
    *,
    registry: Registry | None = ...,
    require: Semantics | None = ...,
    return_exceptions: bool = ...,
) -> NoReturn: ...
@overload
async def delete_many(
    messages: Iterable[Any],
    *,
    registry: Registry | None = ...,
    require: Semantics | None = ...,
    return_exceptions: Literal[False] = ...,
) -> list[DeleteResult]: ...
@overload
async def delete_many(
    messages: Iterable[Any],
    *,
    registry: Registry | None = ...,
    require: Semantics | None = ...,
    return_exceptions: Literal[True],
) -> list[DeleteResult | MsgdelError]: ...
async def delete_many(
    messages: Iterable[Any],
    *,
    registry: Registry | None = None,
    require: Semantics | None = None,
    return_exceptions: bool = False,
) -> list[DeleteResult] | list[DeleteResult | MsgdelError]:
    """Delete many messages; one outcome per message, in input order.

    Messages are grouped by adapter, and each adapter coalesces its group into one round
    trip per broker target where the broker allows. `require` is checked for every adapter
    before any I/O. The call is not atomic: every group is attempted, and each message's
    outcome is its own. With `return_exceptions=True` a message that failed has its
    [`MsgdelError`][msgdel.MsgdelError] in its place; otherwise the first failure (in input order)
    is raised, with every message's outcome in its `outcomes` attribute.
    """
    if isinstance(messages, (str, bytes, bytearray)) or not isinstance(messages, Iterable):
        raise TypeError(
            f"delete_many takes an iterable of FastStream messages, got {type(messages).__name__}"
            "; to delete one message use msgdel.delete(message)"
        )
    if isinstance(messages, Mapping):
        raise TypeError(
            f"delete_many takes an iterable of FastStream messages, got a "
            f"{type(messages).__name__}; pass its values: delete_many(mapping.values())"
        )
    _check.flag("return_exceptions", return_exceptions)
    items = list(messages)
    reg = _dispatch.registry_of(registry)
    groups = _dispatch.group_by_adapter(items, reg, _dispatch.check_require(require))
    _dispatch.note_requested(items)
    if len(groups) == 1:  # the common case: one adapter, no regrouping
        outcomes = await _dispatch.call(reg, groups[0][0], items, "delete_many")
    else:
        outcomes = [None] * len(items)  # type: ignore[list-item]
        parts = await asyncio.gather(
            *(_dispatch.call(reg, a, [items[i] for i in ix], "delete_many") for a, ix in groups)
        )
        for (_, indexes), part in zip(groups, parts):
            for index, outcome in zip(indexes, part):
                outcomes[index] = outcome
    return _finish(outcomes, return_exceptions)


@overload
async def delete_at(
    connection: object,
    addresses: Iterable[Address],
    *,
    adapter: AddressDeletable | None = ...,
    registry: Registry | None = ...,
    require: Semantics | None = ...,
    dry_run: bool = ...,
    return_exceptions: Literal[False] = ...,
) -> list[DeleteResult]: ...
@overload
async def delete_at(
    connection: object,
    addresses: Iterable[Address],
    *,
    adapter: AddressDeletable | None = ...,
    registry: Registry | None = ...,
    require: Semantics | None = ...,
    dry_run: bool = ...,
    return_exceptions: Literal[True],
) -> list[DeleteResult | MsgdelError]: ...
async def delete_at(
    connection: object,
    addresses: Iterable[Address],
    *,
    adapter: AddressDeletable | None = None,
    registry: Registry | None = None,
    require: Semantics | None = None,
    dry_run: bool = False,
    return_exceptions: bool = False,
) -> list[DeleteResult] | list[DeleteResult | MsgdelError]:
    """Delete stored messages named by [address][msgdel.address.Address]; one outcome per
    address, in input order, with the results and errors of
    [`delete_many`][msgdel.delete_many].

    `connection` is a URL (`redis://`, `nats://`, `kafka://host:port`, `mqtt://`), for which a
    client is opened and closed again, or a connected client of the addresses' broker. Each
    address is deleted by the adapter registered for its class (`adapter` overrides that, to
    pass options such as `RedisStreamAdapter(ignore_other_groups=True)`), with the same code
    as a consumed message. `dry_run=True` checks every argument and sends nothing: every
    outcome is `SKIPPED`. Equal addresses are deleted once. Every argument is checked before
    anything is sent.
    """
    items = _addresses(addresses)
    _check.flag("dry_run", dry_run)
    _check.flag("return_exceptions", return_exceptions)
    url = _dispatch.address_url(connection, items)
    reg = _dispatch.registry_of(registry)
    groups = _dispatch.group_addresses(items, reg, adapter, _dispatch.check_require(require))
    outcomes: list[DeleteResult | MsgdelError] = [None] * len(items)  # type: ignore[list-item]
    for chosen, indexes in groups:
        part = [items[i] for i in indexes]
        if dry_run:
            got: list[DeleteResult | MsgdelError] = [
                _dispatch.skipped(chosen, address) for address in part
            ]
        elif url is None:
            got = await _dispatch.call_at(reg, chosen, connection, part)
        else:
            got = await _dispatch.call_connected(reg, chosen, url, part)
        for index, outcome in zip(indexes, got):
            outcomes[index] = outcome
    return _finish(outcomes, return_exceptions)


def _addresses(addresses: object) -> list[Address]:
    """`addresses` as a list, or a `TypeError` that says what to pass."""
    if isinstance(addresses, Address):
        raise TypeError(
            f"delete_at takes an iterable of addresses, got one {type(addresses).__name__}; "
            "pass a list: delete_at(connection, [address])"
        )
    if isinstance(addresses, (str, bytes, bytearray, Mapping)) or not isinstance(
        addresses, Iterable
    ):
        raise TypeError(
            f"delete_at takes an iterable of msgdel.address values, got "
            f"{type(addresses).__name__}; parse text with, e.g., RedisEntry.parse('stream:1-0')"
        )
    items = list(addresses)
    for index, item in enumerate(items):
        if not isinstance(item, Address):
            hint = (
                "; parse it first, e.g. RedisEntry.parse(text)"
                if isinstance(item, str)
                else "; a consumed FastStream message is deleted with msgdel.delete_many"
            )
            raise TypeError(
                f"addresses[{index}] is a {type(item).__name__}, not a msgdel.address value"
                f"{hint}; nothing was sent"
            )
    return items


def _finish(
    outcomes: list[DeleteResult | MsgdelError], return_exceptions: bool
) -> list[DeleteResult] | list[DeleteResult | MsgdelError]:
    """`outcomes` as they are, or raise the first error (carrying them all)."""
    if return_exceptions:
        return outcomes
    for outcome in outcomes:
        if isinstance(outcome, MsgdelError):
            outcome.outcomes = outcomes
            raise outcome
    return outcomes  # type: ignore[return-value]  # no error among them
