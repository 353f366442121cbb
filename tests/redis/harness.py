"""The conformance kit's harnesses for Redis: one per kind of FastStream Redis message.

Each harness consumes real messages from one test bed server (Redis 7 or 8.2: the
``redis_server`` it is given) through FastStream, and reads the server's own state back with
redis-py: ``XRANGE`` for the entries a stream still holds, ``XPENDING`` for its group's
pending entries, ``INFO commandstats`` for the deletion round trips the server received.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar

from faststream import AckPolicy, BaseMiddleware, Context
from faststream.redis import ListSub, RedisBroker, StreamSub, TestRedisBroker
from faststream.redis.message import (
    RedisBatchStreamMessage,
    RedisChannelMessage,
    RedisListMessage,
    RedisStreamMessage,
)

import msgdel
from msgdel.address import Address, RedisEntry
from msgdel.compat import bind_to_subscriber
from msgdel.testing.conformance import Consumed, Handle, Harness
from tests.eventually import eventually

GROUP = "workers"
CONSUMER = "c1"

DELETION_COMMANDS = ("xdelex", "evalsha", "exec", "lrem", "del", "unlink")
"""The commands a deletion round trip shows up as in ``INFO commandstats``: on Redis 8.2
XDELEX, or the EVALSHA of the script around XACKDEL (the XACKDEL it runs is counted too, so
it is left out), one per stream, pipelined; on Redis 7 the
EXEC of the one MULTI per client that holds every XACK and XDEL (those are counted inside
it, one per stream or message, so they are not round trips). Nothing else in these tests
sends an EXEC; LREM, DEL and UNLINK would be a list or pub/sub adapter sending something."""

_names = itertools.count()


def unique(prefix: str) -> str:
    """A stream, list or channel name no other test uses."""
    return f"{prefix}-{next(_names)}"


def modern(server: Any) -> bool:
    """Whether the test bed's ``server`` has XACKDEL and XDELEX (Redis >= 8.2)."""
    return bool(server.version[:2] >= (8, 2))


def entry_ids(client: Any, stream: str) -> list[str]:
    """The ids of the entries ``stream`` holds, in order."""
    return [i.decode() for i, _ in client.xrange(stream)]


def pending_ids(client: Any, stream: str, group: str = GROUP) -> list[str]:
    """The ids ``group`` has pending (delivered, not acknowledged), in order."""
    entries = client.xpending_range(stream, group, "-", "+", 10_000)
    return [p["message_id"].decode() for p in entries]


def deletion_calls(client: Any) -> int:
    """How many deletion round trips the server has received since it started."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in DELETION_COMMANDS)


def fill(client: Any, stream: str, bodies: Sequence[str], group: str | None = GROUP) -> None:
    """Add ``bodies`` to ``stream`` in FastStream's raw format, after creating ``group`` at
    the stream's start, so a subscriber started later reads every one of them."""
    if group is not None:
        client.xgroup_create(stream, group, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for body in bodies:
        pipe.xadd(stream, {"__data__": body})
    pipe.execute()


def capture_messages(broker: RedisBroker) -> list[Any]:
    """The list every FastStream message object ``broker`` consumes is appended to."""
    got: list[Any] = []

    class Capture(BaseMiddleware):  # type: ignore[misc]
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            bind_to_subscriber(msg, self.context)  # what DeleteMiddleware does on FastStream 0.6
            got.append(msg)
            return await call_next(msg)

    broker.add_middleware(Capture)
    return got


async def wait_for(predicate: Callable[[], object], within: float = 30.0) -> None:
    """Wait until ``predicate()`` holds; ``TimeoutError`` after ``within`` seconds."""
    if not await eventually(lambda: bool(predicate()), True, within=within):
        raise TimeoutError(f"not reached within {within}s")


Handler = Callable[[Any, Any], Awaitable[None]]
"""What an app's handler does with each delivery: ``handler(body, message)``."""


def middlewares_of(middleware: Any) -> list[Any]:
    """A broker's ``middlewares=`` for one middleware, a sequence of them, or None."""
    if middleware is None:
        return []
    return list(middleware) if isinstance(middleware, Sequence) else [middleware]


RESULT = "handled"
"""What an app's handler returns, published where its subscriber has a publisher."""


@asynccontextmanager
async def running_app(
    url: str,
    subscription: dict[str, Any],
    middleware: Any,
    handler: Handler,
    done: Callable[[], bool],
    *,
    publisher: dict[str, Any] | None = None,
) -> AsyncIterator[RedisBroker]:
    """Run a FastStream app whose broker has ``middleware`` (one, a sequence, or None) and
    whose subscriber awaits ``handler`` for every delivery, until ``done()``; yield while it
    still runs (and the broker is connected), then stop it. Stopping waits for the handlers'
    middleware (their deletions) to finish. With ``publisher`` (``broker.publisher``
    arguments) the subscriber publishes :data:`RESULT` there after each handler returns."""
    broker = RedisBroker(url, middlewares=middlewares_of(middleware), graceful_timeout=30)

    async def handle(body: Any, message: Any = Context("message")) -> str | None:  # noqa: B008
        await handler(body, message)
        return None if publisher is None else RESULT

    call: Any = handle if publisher is None else broker.publisher(**publisher)(handle)
    broker.subscriber(**subscription)(call)

    async with broker:
        await broker.start()
        await wait_for(done)
        yield broker


class RedisHarness(Harness):
    """What every Redis harness shares: the server, a registry of the built-in adapters, and
    FastStream's in-memory test broker. A subclass says how it subscribes and publishes."""

    prefix: ClassVar[str] = "kit"
    restartable = True
    manual: ClassVar[dict[str, Any]] = {}
    """Extra subscriber options for :meth:`consumed` (streams: acknowledge nothing)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self._registry = msgdel.Registry()
        self._baseline = 0
        self._consumed: set[str] = set()  # the targets consumed() created
        self._publishing: set[str] = set()  # the targets of run_app(publishes=True)

    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    def client(self) -> Any:
        return self.server.client()

    def subscription(self, name: str) -> dict[str, Any]:
        """The ``broker.subscriber`` arguments that consume ``name``."""
        raise NotImplementedError

    def destination(self, name: str) -> dict[str, str]:
        """The ``broker.publish`` arguments that publish to ``name``."""
        raise NotImplementedError

    async def publish(self, broker: RedisBroker, name: str, count: int) -> int:
        """Publish ``count`` messages to ``name`` once ``broker`` has started; return how
        many bodies the subscriber will receive."""
        for i in range(count):
            await broker.publish(f"m{i}", **self.destination(name))
        return count

    def prepare(self, name: str, count: int) -> None:
        """Store what the subscriber reads before the broker starts (nothing by default)."""

    def held(self, message: Any) -> int:
        """How many published bodies one consumed message holds."""
        return 1

    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        name = unique(self.prefix)
        self._consumed.add(name)
        self.prepare(name, count)
        broker = RedisBroker(self.server.url)
        got = capture_messages(broker)

        @broker.subscriber(**self.subscription(name), **self.manual)
        async def handle(body: Any) -> None:
            pass

        async with broker:
            await broker.start()
            bodies = await self.publish(broker, name, count)
            await wait_for(lambda: sum(map(self.held, got)) >= bodies)
            self._baseline = deletion_calls(self.client())
            yield Consumed(name, list(got), [_ids(m) for m in got])

    async def requests(self, target: Any) -> int:
        return deletion_calls(self.client()) - self._baseline

    @asynccontextmanager
    async def in_memory(self, count: int) -> AsyncIterator[list[Any]]:
        broker = RedisBroker()
        got = capture_messages(broker)

        @broker.subscriber(**self.subscription("in-memory"), **self.manual)
        async def handle(body: Any) -> None:
            pass

        async with TestRedisBroker(broker) as test_broker:
            for i in range(count):
                await test_broker.publish(f"m{i}", **self.destination("in-memory"))
            yield list(got)

    async def stop(self) -> None:
        # The test bed's servers are session-scoped, but this process runs one test at a
        # time: no other test sees the server down, and its append-only file keeps every
        # entry and pending list across the restart.
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)  # returns once the server answers


def _ids(message: Any) -> tuple[str, ...]:
    return tuple(i.decode() for i in message.raw_message.get("message_ids") or ())


class StreamHarness(RedisHarness):
    """Stream entries, written before the subscriber starts and read in a consumer group."""

    message_type = RedisStreamMessage
    prefix = "stream"
    group: str | None = GROUP
    per_message = 1
    """How many entries one consumed message holds."""
    manual: ClassVar[dict[str, Any]] = {"ack_policy": AckPolicy.MANUAL}

    def subscription(self, name: str) -> dict[str, Any]:
        consumer = {"group": self.group, "consumer": CONSUMER} if self.group else {"last_id": "0"}
        batch = {"batch": True, "max_records": self.per_message} if self.per_message > 1 else {}
        return {"stream": StreamSub(name, polling_interval=10, **consumer, **batch)}

    def destination(self, name: str) -> dict[str, str]:
        return {"stream": name}

    def prepare(self, name: str, count: int) -> None:
        fill(self.client(), name, [f"m{i}" for i in range(count * self.per_message)], self.group)

    async def publish(self, broker: RedisBroker, name: str, count: int) -> int:
        return count * self.per_message  # written by prepare()

    def held(self, message: Any) -> int:
        return len(message.raw_message["message_ids"])

    def addresses(self, consumed: Consumed) -> list[Address]:
        return [
            RedisEntry(consumed.target, entry, group=self.group)
            for ids in consumed.ids
            for entry in ids
        ]

    def connection(self) -> str:
        return str(self.server.url)

    async def stored(self, target: Any) -> list[str]:
        """The entries ``target`` still holds. Its group's pending entries are checked too:
        none may dangle (pending, its entry gone), and for what :meth:`consumed` read, which
        nothing acknowledged but a deletion, and an app whose handler's results were
        published (an input whose result could not be is not acknowledged: it stays pending
        for redelivery), every stored entry is still pending."""
        client = self.client()
        stored = entry_ids(client, target)
        if self.group is not None:
            pending = pending_ids(client, target, self.group)
            unacknowledged = target in self._consumed or target in self._publishing
            assert (pending == stored) if unacknowledged else set(pending) <= set(stored), (
                f"group {self.group!r} has {pending} pending; the stream holds {stored}"
            )
        return stored

    async def run_app(
        self,
        middleware: Any,
        count: int,
        *,
        handle: Handle | None = None,
        ack_policy: AckPolicy | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        publishes: bool = False,
    ) -> Consumed:
        """The app reads a fresh stream (written before it starts); with ``publishes`` its
        subscriber publishes :data:`RESULT` to a fresh stream ``<name>-out``."""
        name = unique(f"{self.prefix}-app")
        self.prepare(name, count)
        ids = entry_ids(self.client(), name)
        per = self.per_message
        index_of = {entry: n // per for n, entry in enumerate(ids)}  # entry -> message index
        seen: set[int] = set()

        async def handler(body: Any, message: Any) -> None:
            index = index_of[message.raw_message["message_ids"][0].decode()]
            seen.add(index)
            if handle is not None:
                await handle(index, message)

        subscription = self.subscription(name)
        if ack_policy is not None:
            subscription["ack_policy"] = ack_policy
        publisher = None
        if publishes:
            self._publishing.add(name)
            publisher = {"stream": f"{name}-out"}
        async with running_app(
            self.server.url,
            subscription,
            middleware,
            handler,
            lambda: len(seen) >= count,
            publisher=publisher,
        ):
            if on_shutdown is not None:
                await on_shutdown()
        return Consumed(name, [], [tuple(ids[n * per : (n + 1) * per]) for n in range(count)])


class PlainStreamHarness(StreamHarness):
    """Stream entries read without a consumer group (XREAD from the start)."""

    prefix = "plain"
    group = None
    acknowledgeable = False


class BatchStreamHarness(StreamHarness):
    """Batch stream messages in a group: each holds ``per_message`` entries."""

    message_type = RedisBatchStreamMessage
    prefix = "batch"
    per_message = 3


class ListHarness(RedisHarness):
    """List messages: FastStream pops them on read, nothing is left to delete."""

    message_type = RedisListMessage
    prefix = "list"

    def subscription(self, name: str) -> dict[str, Any]:
        return {"list": ListSub(name, polling_interval=0.01)}

    def destination(self, name: str) -> dict[str, str]:
        return {"list": name}


class ChannelHarness(RedisHarness):
    """Pub/sub messages: Redis never stores them."""

    message_type = RedisChannelMessage
    prefix = "channel"

    def subscription(self, name: str) -> dict[str, Any]:
        return {"channel": name}

    def destination(self, name: str) -> dict[str, str]:
        return {"channel": name}
