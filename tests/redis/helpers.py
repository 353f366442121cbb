"""Consume real messages from the test bed's Redis through FastStream, keeping the broker open."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream import AckPolicy
from faststream.redis import ListSub, RedisBroker, StreamSub

_names = itertools.count()


def modern(server: Any) -> bool:
    """Whether the test bed's ``server`` has XACKDEL and XDELEX (Redis >= 8.2)."""
    return bool(server.version[:2] >= (8, 2))


def unique(prefix: str) -> str:
    """A stream or list name no other test uses."""
    return f"{prefix}-{next(_names)}"


@asynccontextmanager
async def consumed(
    url: str,
    *,
    stream: str | None = None,
    group: str | None = None,
    list_name: str | None = None,
    channel: str | None = None,
    publish: int = 3,
    batch: bool = False,
    prefill: Any = None,
) -> AsyncIterator[tuple[RedisBroker, list[Any]]]:
    """Publish ``publish`` messages, consume them with FastStream and yield the message objects.

    A batch subscriber yields as many batch messages as FastStream read, together holding
    every published entry.

    Stream messages are consumed with ``AckPolicy.MANUAL`` so nothing is acknowledged behind
    the test's back; the broker stays connected while the test deletes.
    """
    broker = RedisBroker(url)
    got: list[Any] = []
    done = asyncio.Event()
    held = 0

    kwargs: dict[str, Any] = {}
    if stream is not None:
        consumer = "c1" if group else None
        kwargs["stream"] = StreamSub(
            stream,
            group=group,
            consumer=consumer,
            batch=batch,
            polling_interval=10,
            **({} if group else {"last_id": "0"}),
        )
        kwargs["ack_policy"] = AckPolicy.MANUAL
    elif list_name is not None:
        kwargs["list"] = ListSub(list_name, batch=batch, polling_interval=0.01)
    else:
        kwargs["channel"] = channel

    @broker.subscriber(**kwargs)
    async def handle(body: Any, msg: Any = None) -> None:
        pass

    async def capture(message: Any) -> None:
        nonlocal held
        got.append(message)
        ids = message.raw_message.get("message_ids") if stream else None
        held += len(ids) if batch and ids else 1
        if held >= publish:
            done.set()

    _capture_messages(broker, capture)
    async with broker:
        await broker.start()
        if prefill is not None:
            await prefill(broker)
        if batch and stream is not None:
            async with broker._connection.pipeline() as pipe:  # all in one read
                for i in range(publish):
                    pipe.xadd(stream, {"__data__": f"m{i}".encode()})
                await pipe.execute()
        else:
            for i in range(publish):
                target = (
                    {"stream": stream}
                    if stream
                    else ({"list": list_name} if list_name else {"channel": channel})
                )
                await broker.publish(f"m{i}", **target)
        await asyncio.wait_for(done.wait(), 10)
        yield broker, got


def _capture_messages(broker: RedisBroker, capture: Any) -> None:
    """Record every consumed FastStream message object through a broker middleware."""
    from faststream import BaseMiddleware

    from msgdel.compat import bind_to_subscriber

    class Capture(BaseMiddleware):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            bind_to_subscriber(msg, self.context)  # what DeleteMiddleware does on FastStream 0.6
            await capture(msg)
            return await call_next(msg)

    broker.add_middleware(Capture)
