"""What differs between the FastStream versions msgdel supports (0.6 and 0.7)."""

from __future__ import annotations

from typing import Any


def bind_to_subscriber(message: Any, context: Any) -> None:
    """Give a FastStream 0.6 Redis stream message the client and group that 0.7 binds to it.

    FastStream 0.7 stores the Redis client and consumer group on every stream message
    (``message.consumer``, ``message.group``); 0.6 keeps them on the subscriber only. Called
    from a middleware with the broker's context, this copies them from the subscriber that
    is handling ``message``. It changes nothing on 0.7, or for other messages.
    """
    if context is None or getattr(message, "consumer", None) is not None:
        return
    raw = getattr(message, "raw_message", None)
    if not isinstance(raw, dict) or "message_ids" not in raw:
        return
    handler = context.get_local("handler_")
    options = getattr(handler, "extra_watcher_options", None) or {}
    if options.get("redis") is not None:
        message.consumer = options["redis"]
        message.group = options.get("group")
