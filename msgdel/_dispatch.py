"""What `delete`, `delete_many`, the Batcher and the middleware share: resolving the
adapter, checking `require`, calling the adapter, validating what it returned, and
reporting every call to the registry's observers."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, cast

import attrs

from msgdel import _tally
from msgdel._urls import require_scheme, scheme_of
from msgdel.address import Address
from msgdel.errors import DeletionFailed, MsgdelError, UnsupportedDeletion, redact
from msgdel.observe import DeletionReport, Operation
from msgdel.protocol import AddressDeletable, Deletable
from msgdel.registry import Registry, default_registry
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

Outcomes = list["DeleteResult | MsgdelError"]

log = logging.getLogger("msgdel.deletions")
"""One DEBUG line per adapter call (nothing at INFO), with `extra` fields: `broker`,
`target`, `outcome`, `outcomes`, `operation`, `messages`, `seconds`."""


class Handling:
    """The message a FastStream handler is handling, and whether the handler asked msgdel to
    delete it itself (so the middleware does not delete it twice)."""

    __slots__ = ("message", "refused", "requested")

    def __init__(self, message: Any) -> None:
        self.message = message
        self.requested = False
        self.refused = False  # the handler nacked or rejected it

    def refuse(self) -> None:
        self.refused = True


handling: contextvars.ContextVar[Handling | None] = contextvars.ContextVar(
    "msgdel_handling", default=None
)
"""Set by the middleware while the handler runs."""


def note_requested(messages: Iterable[Any]) -> None:
    """Remember that the running handler asked to delete its own message, if it did."""
    current = handling.get()
    if current is not None and not current.requested:
        target = current.message
        current.requested = any(m is target for m in messages)


def registry_of(registry: Registry | None) -> Registry:
    """`registry`, or the default registry when None; a clear error for anything else."""
    if registry is None:
        return default_registry
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
    return registry


def check_require(require: Semantics | None) -> Semantics | None:
    """`require` itself, after checking it is a [`Semantics`][msgdel.Semantics] (or None)."""
    if require is None or isinstance(require, Semantics):
        return require
    hint = ""
    if isinstance(require, str) and require.upper() in Semantics.__members__:
        hint = f" (use msgdel.Semantics.{require.upper()})"
    raise TypeError(f"require must be a msgdel.Semantics or None, got {require!r}{hint}")


def check_semantics(adapter: Deletable, require: Semantics | None) -> None:
    """Raise [`UnsupportedDeletion`][msgdel.UnsupportedDeletion] when `adapter` cannot meet
    `require`."""
    if require is not None and not adapter.features.semantics.satisfies(require):
        raise UnsupportedDeletion(
            f"{adapter!r} deletes with {adapter.features.semantics.name} semantics, which does "
            f"not meet require={require.name}; nothing was sent to the broker"
        )


def resolve(registry: Registry, message: Any, require: Semantics | None) -> Deletable:
    """The adapter of `message`, refused before any I/O when it cannot meet `require`."""
    if isinstance(message, Address):
        raise TypeError(
            f"{message!r} is an address, not a consumed message: delete it with "
            "msgdel.delete_at(url_or_client, [address])"
        )
    adapter = registry.resolve(type(message))
    check_semantics(adapter, require)
    return adapter


def group_by_adapter(
    items: Sequence[Any], registry: Registry, require: Semantics | None
) -> list[tuple[Deletable, list[int]]]:
    """Indexes of `items` grouped by the adapter that deletes them, in first-seen order.
    Every adapter is checked against `require` before anything is sent."""
    classes = set(map(type, items))
    if len(classes) == 1:  # the usual call: one class of message, one adapter
        return [(resolve(registry, items[0], require), list(range(len(items))))]
    groups: dict[int, tuple[Deletable, list[int]]] = {}
    by_type: dict[type, Deletable] = {}
    for index, message in enumerate(items):
        cls = type(message)
        adapter = by_type.get(cls)
        if adapter is None:
            adapter = by_type[cls] = resolve(registry, message, require)
        group = groups.get(id(adapter))
        if group is None:
            group = groups[id(adapter)] = (adapter, [])
        group[1].append(index)
    return list(groups.values())


def group_addresses(
    items: Sequence[Address],
    registry: Registry,
    adapter: AddressDeletable | None,
    require: Semantics | None,
) -> list[tuple[AddressDeletable, list[int]]]:
    """Indexes of `items` grouped by the adapter that deletes them (`adapter` for all, when
    given), in first-seen order; every adapter checked before anything is sent."""
    brokers = {type(a).broker for a in items}
    if len(brokers) > 1:
        raise ValueError(
            f"delete_at deletes on one broker per call, got addresses of {sorted(brokers)}: "
            "call it once per broker"
        )
    if not items:
        return []
    if adapter is not None:
        _address_adapter(adapter, type(items[0]))
        check_semantics(adapter, require)
        return [(adapter, list(range(len(items))))]
    groups: dict[int, tuple[AddressDeletable, list[int]]] = {}
    by_type: dict[type, AddressDeletable] = {}
    for index, address in enumerate(items):
        cls = type(address)
        chosen = by_type.get(cls)
        if chosen is None:
            chosen = by_type[cls] = _address_adapter(registry.resolve(cls), cls)
            check_semantics(chosen, require)
        groups.setdefault(id(chosen), (chosen, []))[1].append(index)
    return list(groups.values())


def _address_adapter(adapter: object, address_type: type) -> AddressDeletable:
    if not isinstance(adapter, AddressDeletable) or not adapter.features.by_address:
        raise UnsupportedDeletion(
            f"{adapter!r} does not delete by address, so it cannot delete a "
            f"{address_type.__name__}; nothing was sent"
        )
    return adapter


_UNADDRESSABLE = {
    "amqp": "RabbitMQ",
    "amqps": "RabbitMQ",
}


def address_url(connection: object, items: Sequence[Address]) -> str | None:
    """The URL `connection` is, checked against the addresses' schemes; None for a client."""
    if not isinstance(connection, str):
        if connection is None:
            raise TypeError("connection must be a broker URL or a connected client, got None")
        return None
    if scheme_of(connection) in _UNADDRESSABLE:
        raise UnsupportedDeletion(
            "a RabbitMQ queue has no addresses: RabbitMQ cannot remove a given message except "
            "by consuming and settling it. Delete consumed messages with msgdel.delete(msg) "
            "(or DeleteMiddleware), or let a dead-letter exchange take rejected ones"
        )
    if not items:
        return connection
    cls = type(items[0])
    require_scheme(connection, cls.schemes, f"{cls.__name__} addresses are deleted")
    return connection


def skipped(adapter: Deletable, address: Address) -> DeleteResult:
    """The dry run's result for `address`: nothing sent."""
    return DeleteResult(
        address.broker, address.target, (address.id,), adapter.features.semantics,
        Outcome.SKIPPED, 0,
    )  # fmt: skip


async def call_connected(
    registry: Registry, adapter: AddressDeletable, url: str, addresses: Sequence[Address]
) -> Outcomes:
    """[`call_at`][msgdel._dispatch.call_at] on a client opened for `url` and closed after;
    a client that cannot be opened fails every address with the same error, and one that
    fails to close changes no outcome (it is logged)."""
    opened = adapter.connect(url)
    try:
        client = await opened.__aenter__()
    except MsgdelError as exc:
        return [exc] * len(addresses)
    except Exception as exc:
        error = DeletionFailed(
            f"{adapter!r} could not connect to {redact(url)} ({redact(repr(exc))}); nothing was "
            "sent, and retrying is safe",
            retryable=True,
            cause=exc,
        )
        return [error] * len(addresses)
    try:
        return await call_at(registry, adapter, client, addresses)
    finally:
        try:
            await opened.__aexit__(None, None, None)
        except Exception:
            log.warning("closing the client %s opened for delete_at failed", redact(url),
                        exc_info=True)  # fmt: skip


async def call(
    registry: Registry, adapter: Deletable, messages: Sequence[Any], operation: Operation
) -> Outcomes:
    """Call `adapter.delete_many(messages)`: one outcome per message, in order, never an
    exception (but cancellation). The call is reported to `registry`'s observers.

    A message given more than once is sent once: its first place gets the adapter's outcome,
    the others what deleting it again reports (the adapter's `repeat` outcome where the first
    deleted it), so nothing is settled or counted twice."""
    return await _run(registry, adapter, messages, operation, adapter.delete_many, id)


async def call_at(
    registry: Registry, adapter: AddressDeletable, connection: Any, addresses: Sequence[Any]
) -> Outcomes:
    """Call `adapter.delete_at(connection, addresses)` with the guarantees of
    [`call`][msgdel._dispatch.call]; equal addresses count as one."""

    def send(sent: Sequence[Any]) -> Any:
        return adapter.delete_at(connection, sent)

    return await _run(registry, adapter, addresses, "delete_at", send, _same)


def _same(address: Any) -> Any:
    return address  # addresses are values: equal ones name the same message


async def _run(
    registry: Registry,
    adapter: Deletable,
    messages: Sequence[Any],
    operation: Operation,
    send: Callable[[Sequence[Any]], Awaitable[object]],
    identity: Callable[[Any], Hashable],
) -> Outcomes:
    began = time.perf_counter()
    counted: _tally.Tally | None = None
    places = _places_of_duplicates(messages, identity)
    sent = messages if places is None else list({identity(m): m for m in messages}.values())
    try:
        got = await send(sent)
    except MsgdelError as exc:
        outcomes: Outcomes = [exc] * len(sent)
    except Exception as exc:
        error = DeletionFailed(
            f"{adapter!r} failed with {exc!r}; whether the broker deleted anything is unknown: "
            "deleting again is safe and reports what is left",
            retryable=False,
            cause=exc,
        )
        outcomes = [error] * len(sent)
    else:
        # Observed, the usual call is checked and counted in one pass (`_tally.uniform`).
        counted = (
            _tally.uniform(got)
            if registry.observers and places is None and type(got) is list and len(got) == len(sent)
            else None
        )
        outcomes = cast(Outcomes, got) if counted is not None else _validated(adapter, sent, got)
    if places is not None:
        outcomes = _repeated(outcomes, places, adapter.features.repeat)
    seconds = time.perf_counter() - began
    if registry.observers:
        report = DeletionReport(
            operation, adapter, adapter.features, tuple(messages), tuple(outcomes), seconds
        )
        if counted is not None:
            _tally.remember(report, counted)
        registry.report(report)
    if log.isEnabledFor(logging.DEBUG):
        _log_call(operation, adapter, outcomes, seconds)
    return outcomes


def _places_of_duplicates(
    messages: Sequence[Any], identity: Callable[[Any], Hashable]
) -> list[int] | None:
    """None when every message is distinct by `identity` (the usual case, checked cheaply);
    else, per message, the index of its first occurrence among the distinct ones, negated
    minus one for a repeat (`-1 - index`)."""
    if len(messages) < 2 or len(set(map(identity, messages))) == len(messages):
        return None
    first: dict[Hashable, int] = {}
    places = []
    for message in messages:
        index = first.get(identity(message))
        if index is None:
            index = first[identity(message)] = len(first)
            places.append(index)
        else:
            places.append(-1 - index)
    return places


def _repeated(outcomes: Outcomes, places: list[int], repeat: Outcome) -> Outcomes:
    """The outcomes of the distinct messages spread back over every place they were given."""
    spread: Outcomes = []
    for place in places:
        if place >= 0:
            spread.append(outcomes[place])
            continue
        outcome = outcomes[-1 - place]
        if isinstance(outcome, DeleteResult) and outcome.outcome is Outcome.DELETED:
            outcome = attrs.evolve(outcome, outcome=repeat, removed=0)
        spread.append(outcome)
    return spread


def _log_call(operation: Operation, adapter: Deletable, outcomes: Outcomes, seconds: float) -> None:
    """Log one adapter call at DEBUG: its broker, target(s) and outcome counts, no secrets.

    `outcome` is the outcome's value (`"deleted"`) or the error class when every message
    had the same, else `"mixed"`; `target` is the targets of the results, comma-separated
    (errors name none)."""
    counts: dict[str, int] = {}
    targets: set[str] = set()
    for outcome in outcomes:
        if isinstance(outcome, DeleteResult):
            key = outcome.outcome.value
            targets.add(outcome.target)
        else:
            key = type(outcome).__name__
        counts[key] = counts.get(key, 0) + 1
    broker = adapter.features.broker
    target = redact(",".join(sorted(targets)))
    summary = ", ".join(f"{key}={n}" for key, n in counts.items())
    log.debug(
        "%s of %d messages via %s (%s) in %.1f ms: %s",
        operation, len(outcomes), broker, target or "no target", seconds * 1000, summary,
        extra={
            "broker": broker,
            "target": target,
            "outcome": next(iter(counts)) if len(counts) == 1 else "mixed",
            "outcomes": counts,
            "operation": operation,
            "messages": len(outcomes),
            "seconds": seconds,
        },
    )  # fmt: skip


def _validated(adapter: Deletable, messages: Sequence[Any], got: object) -> Outcomes:
    """`got` as a list of outcomes, or one protocol error for every message."""
    if type(got) is list:
        outcomes: Outcomes = got
    elif isinstance(got, Sequence) and not isinstance(got, (str, bytes)):
        outcomes = list(got)
    else:
        return [_broke(adapter, f"returned {type(got).__name__}, not a list")] * len(messages)
    if len(outcomes) != len(messages):
        return [
            _broke(adapter, f"returned {len(outcomes)} outcomes for {len(messages)} messages")
        ] * len(messages)
    for item in outcomes:
        if type(item) is DeleteResult or isinstance(item, DeleteResult):
            if (
                item.outcome.__class__ is not Outcome
                or item.semantics.__class__ is not Semantics
                or item.removed.__class__ is not int
                or item.removed < 0
            ):
                return [_broke(adapter, f"returned a malformed result {item!r}")] * len(messages)
        elif not isinstance(item, MsgdelError):
            return [_broke(adapter, f"returned {item!r} among its outcomes")] * len(messages)
    return outcomes


def _broke(adapter: Deletable, what: str) -> DeletionFailed:
    return DeletionFailed(
        f"{adapter!r} broke the msgdel adapter protocol: delete_many {what} (it must return one "
        "DeleteResult or MsgdelError per message, in order); whether the broker deleted "
        "anything is unknown, and deleting again is safe",
        retryable=False,
    )


def raise_for(outcome: DeleteResult | MsgdelError) -> DeleteResult:
    """The result, or raise the error."""
    if isinstance(outcome, MsgdelError):
        raise outcome
    return outcome
