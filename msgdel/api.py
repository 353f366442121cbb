"""``delete`` and ``delete_many``: one call, whatever the broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from msgdel.errors import DeletionFailed, MsgdelError, UnsupportedDeletion
from msgdel.protocol import Deletable
from msgdel.registry import Registry, default_registry
from msgdel.result import DeleteResult
from msgdel.semantics import Semantics


async def delete(
    message: Any, *, registry: Registry | None = None, require: Semantics | None = None
) -> DeleteResult:
    """Delete one consumed FastStream message at its broker and say what the broker did.

    ``require`` refuses, before any I/O, an adapter whose semantics do not satisfy it
    (see :meth:`Semantics.satisfies`). Every failure is a :class:`~msgdel.MsgdelError`.
    """
    adapter = (registry or default_registry).resolve(type(message))
    check_semantics(adapter, require)
    result: DeleteResult = await call_adapter(adapter, adapter.delete, message)
    return result


async def delete_many(
    messages: Iterable[Any], *, registry: Registry | None = None, require: Semantics | None = None
) -> list[DeleteResult]:
    """Delete many messages; results come back in input order.

    Messages are grouped by adapter, and each adapter coalesces its group into one round
    trip per broker target where the broker allows. ``require`` is checked for every adapter
    before any I/O. The call is not atomic across adapters: if one group fails, the first
    failure (in input order) is raised after every group has been attempted.
    """
    items = list(messages)
    reg = registry or default_registry
    types = set(map(type, items))
    if len(types) == 1:  # the common case: one adapter, no regrouping, no reordering
        adapter = reg.resolve(types.pop())
        check_semantics(adapter, require)
        return _checked(adapter, items, await call_adapter(adapter, adapter.delete_many, items))

    groups = group_by_adapter(items, reg)
    for adapter, _ in groups.values():
        check_semantics(adapter, require)

    results: list[DeleteResult | None] = [None] * len(items)

    async def run(adapter: Deletable, indexes: list[int]) -> None:
        batch = [items[i] for i in indexes]
        got = _checked(adapter, batch, await call_adapter(adapter, adapter.delete_many, batch))
        for i, result in zip(indexes, got):
            results[i] = result

    outcomes = await asyncio.gather(
        *(run(a, ix) for a, ix in groups.values()), return_exceptions=True
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def group_by_adapter(
    items: list[Any], registry: Registry
) -> dict[int, tuple[Deletable, list[int]]]:
    """Indexes of ``items`` grouped by the adapter that deletes them, in first-seen order."""
    groups: dict[int, tuple[Deletable, list[int]]] = {}
    resolve = registry.resolve
    for index, message in enumerate(items):
        adapter = resolve(type(message))
        group = groups.get(id(adapter))
        if group is None:
            group = groups[id(adapter)] = (adapter, [])
        group[1].append(index)
    return groups


def _checked(adapter: Deletable, batch: list[Any], got: Any) -> list[DeleteResult]:
    results = got if type(got) is list else list(got)
    if len(results) != len(batch):
        raise DeletionFailed(
            f"{adapter!r} returned {len(results)} results for {len(batch)} messages",
            retryable=False,
        )
    return results


def check_semantics(adapter: Deletable, require: Semantics | None) -> None:
    """Raise :class:`~msgdel.UnsupportedDeletion` when ``adapter`` cannot meet ``require``."""
    if require is not None and not adapter.semantics.satisfies(require):
        raise UnsupportedDeletion(
            f"{adapter!r} deletes with {adapter.semantics.name} semantics, which does not meet "
            f"require={require.name}; nothing was sent to the broker"
        )


async def call_adapter(adapter: Deletable, method: Any, arg: Any) -> Any:
    """Await ``method(arg)``; an error that is not a msgdel error becomes ``DeletionFailed``."""
    try:
        return await method(arg)
    except MsgdelError:
        raise
    except Exception as exc:
        raise DeletionFailed(f"{adapter!r} failed: {exc!r}", retryable=False, cause=exc) from exc
