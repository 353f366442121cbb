"""What msgdel needs to know of FastStream's internals, for the versions it supports (0.6, 0.7).

Every use of a FastStream attribute that is not public API lives here, so that a FastStream
upgrade breaks this one file: the running handler, the in-memory test broker's stand-ins,
the acknowledgement status of a message, and the 0.6 Redis binding.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Callable
from typing import Any

from faststream import AckPolicy
from faststream.message import AckStatus


def running_subscriber(context: Any = None) -> Any | None:
    """The FastStream subscriber handling a message in the current task, if any.

    Every FastStream broker keeps the running subscriber in a context variable named
    `handler_` for the duration of the handler (and its middlewares); `context` is the
    broker's `ContextRepo` when the caller has it.
    """
    if context is not None:
        try:
            return context.get_local("handler_")
        except Exception:
            pass
    for var, value in contextvars.copy_context().items():
        if var.name == "handler_" and hasattr(value, "_outer_config"):
            return value
    return None


def handler_config(message: Any = None) -> Any | None:
    """The broker configuration of the FastStream handler that received `message` (as
    remembered by `remember_handler`), else of the handler running in this task."""
    if message is not None:
        try:
            remembered = _handler_configs.get(message)
        except TypeError:  # not weakly referable
            remembered = None
        if remembered is not None:
            return remembered
    return getattr(running_subscriber(), "_outer_config", None)


def remember_handler(message: Any) -> None:
    """Remember which broker's handler received `message`, for a deletion that runs
    elsewhere (a Batcher flush in another task): messages that carry no connection of their
    own (NATS KV and object-store entries, MQTT messages, Redis list and pub/sub messages)
    find it there, not in whatever handler happens to be running then."""
    config = getattr(running_subscriber(), "_outer_config", None)
    if config is not None:
        with contextlib.suppress(TypeError):  # not weakly referable: nothing to remember
            _handler_configs[message] = config


_handler_configs: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def is_test_double(obj: object) -> bool:
    """Whether `obj` is a stand-in of FastStream's in-memory test brokers.

    `TestRedisBroker` and the others replace the producer (a class in a `*.testing`
    module), bind a `FakeConsumer` to Kafka and Redis messages, and build RabbitMQ
    messages as a `PatchedMessage`. Decided once per class (the hot path asks it for every
    message's client).
    """
    cls = type(obj)
    known = _test_double_classes.get(cls)
    if known is None:
        known = _test_double_classes[cls] = any(
            c.__module__.startswith("faststream.")
            and (c.__module__.endswith(".testing") or c.__name__ in _TEST_CLASS_NAMES)
            for c in cls.__mro__
        )
    return known


_test_double_classes: dict[type, bool] = {}
"""Per class: whether it is a test double. Classes are few and live as long as the process."""


_TEST_CLASS_NAMES = frozenset({"FakeConsumer", "PatchedMessage"})


def under_test_broker(config: Any) -> bool:
    """Whether the broker configuration `config` (`broker.config`, or a handler's from
    `handler_config`) belongs to a broker FastStream's in-memory test broker patched."""
    return is_test_double(getattr(config, "producer", None))


def is_settled(message: Any) -> bool:
    """Whether the handler, FastStream or an earlier delete settled `message` already."""
    return getattr(message, "committed", None) is not None


def is_acknowledged(message: Any) -> bool:
    """Whether `message` was acknowledged at its broker (by FastStream, the handler or an
    earlier deletion); not a message only marked so that its batch acknowledges it."""
    if getattr(message, "committed", None) is not AckStatus.ACKED:
        return False
    try:
        return message not in _left_to_batch
    except TypeError:  # not hashable: it cannot have been left to a batch
        return True


def leave_acknowledgement_to_batch(message: Any) -> None:
    """Mark `message` acknowledged so FastStream sends no acknowledgement of its own, while
    its queued deletion (which acknowledges it) remembers that it still has to."""
    if getattr(message, "committed", None) is None:
        try:
            _left_to_batch.add(message)
        except TypeError:
            return  # cannot be remembered: let FastStream acknowledge it
        message.committed = AckStatus.ACKED


_left_to_batch: weakref.WeakSet[Any] = weakref.WeakSet()


def is_nacked(message: Any) -> bool:
    """Whether `message` was nacked (FastStream redelivers it)."""
    return getattr(message, "committed", None) is AckStatus.NACKED


def is_refused(message: Any) -> bool:
    """Whether `message` was nacked or rejected: settled as *not* done."""
    return getattr(message, "committed", None) in (AckStatus.NACKED, AckStatus.REJECTED)


def watch_refusal(message: Any, refused: Callable[[], None]) -> None:
    """Call `refused()` when the handler nacks or rejects `message`, unless its class
    records both in `committed` (then `is_refused` tells).

    Not every broker's message records a nack or a reject in `committed` (FastStream's
    MQTT `nack()` does nothing, its `reject()` acknowledges, Kafka's `reject()` too), so the
    handler's explicit decision is observed where it is made: on the message's own `nack`
    and `reject`.
    """
    if _records_refusal(type(message)):
        return
    for name in ("nack", "reject"):
        settle = getattr(message, name, None)
        if settle is None:
            continue

        async def watched(*args: Any, _settle: Any = settle, **kwargs: Any) -> Any:
            refused()
            return await _settle(*args, **kwargs)

        try:
            setattr(message, name, watched)
        except (AttributeError, TypeError):  # a message class with slots: committed tells
            return


def unwatch_refusal(message: Any) -> None:
    """Undo `watch_refusal` once the handler returned (the wrappers hold the message's
    own bound methods: left in place they would keep every message in a reference cycle)."""
    if _records_refusal(type(message)):
        return
    attributes = getattr(message, "__dict__", None)
    if attributes is not None:
        for name in ("nack", "reject"):
            attributes.pop(name, None)


_RECORDING_MODULES = ("faststream.redis.", "faststream.rabbit.", "faststream.nats.")
"""Where FastStream's message classes record a nack as `NACKED` and a reject as `REJECTED`
in `committed` (their `nack` and `reject` end in `StreamMessage`'s, which does), as the
handler's own call of them would: nothing needs watching there. A subclass defined
elsewhere may override them, so it is watched."""


def _records_refusal(cls: type) -> bool:
    known = _recording_classes.get(cls)
    if known is None:
        known = _recording_classes[cls] = cls.__module__.startswith(_RECORDING_MODULES)
    return known


_recording_classes: dict[type, bool] = {}


def is_handler_delivery(message: Any, context: Any) -> bool:
    """Whether `message` is being handled by a subscriber's handler, as opposed to read by
    `subscriber.get_one()` or `async for` (which run the broker middlewares too).

    FastStream (0.6 and 0.7) puts the message into the context as `message` just before it
    calls the handler, and only then. Without a context (early 0.6) every call is one.
    """
    if context is None:
        return True
    try:
        return bool(context.get_local("message") is message)
    except Exception:
        return True


def manual_ack(subscriber: Any) -> bool:
    """Whether `subscriber` leaves acknowledgement to the handler (`AckPolicy.MANUAL`).

    FastStream also reports `MANUAL` for Redis subscriptions that have nothing to
    acknowledge (lists, pub/sub channels, streams read without a group or with `no_ack`);
    there a handler that returns is done with its message, so those are not manual here.
    """
    if getattr(subscriber, "ack_policy", None) is not AckPolicy.MANUAL:
        return False
    if not type(subscriber).__module__.startswith("faststream.redis."):
        return True
    stream = getattr(subscriber, "stream_sub", None)
    return stream is not None and stream.group is not None and not stream.no_ack


def claims_pending(subscriber: Any) -> bool:
    """Whether `subscriber` claims other consumers' pending Redis stream entries
    (`StreamSub(min_idle_time=...)`: XAUTOCLAIM, or `claim_min_idle_time`)."""
    return any(
        getattr(subscriber, name, None) is not None
        for name in ("min_idle_time", "claim_min_idle_time")
    )


def mark_settled(message: Any, status: AckStatus = AckStatus.ACKED) -> None:
    """Mark `message` settled, unless it is already, so FastStream sends no settlement of
    its own (the deletion settled it, or will)."""
    if getattr(message, "committed", None) is None:
        message.committed = status


def clear_settled(message: Any) -> None:
    """Undo a settlement mark: the settlement did not reach the broker."""
    message.committed = None


def bind_to_subscriber(message: Any, context: Any = None) -> None:
    """Give a FastStream 0.6 Redis stream message the client and group that 0.7 binds to it.

    FastStream 0.7 stores the Redis client and consumer group on every stream message
    (`message.consumer`, `message.group`); 0.6 keeps them on the subscriber only. This
    copies them from the subscriber handling `message`: the broker `context`'s
    `handler_` when given, else the one running in this task. It changes nothing on 0.7,
    for other messages, or outside a handler.
    """
    if getattr(message, "consumer", None) is not None:
        return
    raw = getattr(message, "raw_message", None)
    if not isinstance(raw, dict) or "message_ids" not in raw:
        return
    subscriber = context.get_local("handler_") if context is not None else running_subscriber()
    options = getattr(subscriber, "extra_watcher_options", None) or {}
    if options.get("redis") is not None:
        message.consumer = options["redis"]
        message.group = options.get("group")
