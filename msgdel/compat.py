"""What msgdel needs to know of FastStream's internals, for the versions it supports (0.6, 0.7)."""

from __future__ import annotations

import contextvars
from typing import Any


def running_subscriber() -> Any | None:
    """The FastStream subscriber handling a message in the current task, if any.

    Every FastStream broker keeps the running subscriber in a context variable named
    ``handler_`` for the duration of the handler (and its middlewares).
    """
    for var, value in contextvars.copy_context().items():
        if var.name == "handler_" and hasattr(value, "_outer_config"):
            return value
    return None


def handler_config() -> Any | None:
    """The broker configuration of the FastStream handler running in this task, if any."""
    return getattr(running_subscriber(), "_outer_config", None)


def is_test_double(producer: object) -> bool:
    """Whether FastStream's in-memory test broker replaced the broker's producer."""
    module = type(producer).__module__
    return module.startswith("faststream.") and module.endswith(".testing")


def bind_to_subscriber(message: Any, context: Any = None) -> None:
    """Give a FastStream 0.6 Redis stream message the client and group that 0.7 binds to it.

    FastStream 0.7 stores the Redis client and consumer group on every stream message
    (``message.consumer``, ``message.group``); 0.6 keeps them on the subscriber only. This
    copies them from the subscriber handling ``message``: the broker ``context``'s
    ``handler_`` when given, else the one running in this task. It changes nothing on 0.7,
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
