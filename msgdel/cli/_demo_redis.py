"""The Redis part of `msgdel demo`: a stream read by a consumer group."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from redis.asyncio import Redis

from msgdel.cli._scenario import CHUNK, Figure

if TYPE_CHECKING:
    from types import TracebackType

    from msgdel.faststream import DeleteMiddleware

STREAM = "msgdel-demo"
GROUP = "demo"
CONSUMER = "demo-1"


class RedisDemo:
    """`msgdel-demo`, read by the group `demo` from its first entry."""

    title = f"stream {STREAM}, consumer group {GROUP}"

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Redis = Redis.from_url(url)

    async def __aenter__(self) -> RedisDemo:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.aclose()

    async def prepare(self) -> None:
        await self.client.xgroup_create(STREAM, GROUP, id="0", mkstream=True)

    async def publish(self, count: int, advance: Callable[[int], None]) -> None:
        producer = RedisBroker(self.url, logger=None)  # type: ignore[arg-type]  # None: no logs
        async with producer:
            for start in range(0, count, CHUNK):
                chunk = range(start, min(start + CHUNK, count))
                await asyncio.gather(
                    *(producer.publish({"order": i, "item": "book"}, stream=STREAM) for i in chunk)
                )
                advance(len(chunk))

    def app(self, middleware: DeleteMiddleware, handled: Callable[[], None]) -> FastStream:
        broker = RedisBroker(
            self.url,
            middlewares=[middleware],
            logger=None,  # type: ignore[arg-type]  # FastStream takes None: no logs
            graceful_timeout=10,
        )

        stream = StreamSub(STREAM, group=GROUP, consumer=CONSUMER, max_records=100)

        @broker.subscriber(stream=stream)
        async def fulfil(order: dict[str, Any]) -> None:
            handled()  # ship the order; the middleware deletes the entry afterwards

        return FastStream(broker, logger=None)

    async def state(self) -> list[Figure]:
        entries = await self.client.xlen(STREAM)
        pending = (await self.client.xpending(STREAM, GROUP))["pending"]
        group = next(
            g
            for g in await self.client.xinfo_groups(STREAM)
            if g["name"] in (GROUP, GROUP.encode())
        )
        return [
            Figure("entries in the stream (XLEN)", int(entries), left_behind=True),
            Figure("delivered, not acknowledged (XPENDING)", int(pending), left_behind=True),
            Figure("not delivered yet (XINFO GROUPS lag)", group["lag"], left_behind=True),
        ]
