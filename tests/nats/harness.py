"""How the conformance kit (and the NATS specs) drive msgdel's NATS adapters on a real server.

One harness per kind of message FastStream hands a NATS handler. What ``Consumed.ids`` holds
is what the adapter reports in ``DeleteResult.ids``:

- :class:`JetStreamHarness`: ``NatsMessage`` from a limits stream, through a push or a pull
  subscriber: one stream sequence per message, ``("7",)``. The target is the stream.
- :class:`JetStreamBatchHarness`: ``NatsBatchMessage`` from a pull subscriber with
  ``batch=True``: the stream sequences of the batch's messages, ``("3", "4")``.
- :class:`KeyValueHarness`: ``NatsKvMessage`` from a KV watch: the key, ``("k001",)``. The
  target is the bucket.
- :class:`ObjectStoreHarness`: ``NatsObjMessage`` from an object-store watch: the object's
  name, ``("o001",)``. The target is the bucket.
- :class:`CoreNatsHarness`: ``NatsMessage`` from a core NATS subscription, which the server
  never stored: no ids, ``()``. The target is the subject.

The consumers of :meth:`~NatsHarness.consumed` never acknowledge (``AckPolicy.MANUAL``), so
nothing leaves a stream behind a test's back. The broker's state is read with nats-py on a
connection of the harness's own, never through msgdel: a stream's stored sequences message by
message (``get_msg``), a bucket's live keys and listed objects from the latest entry of each
subject. Deletion requests are counted by a core subscriber on the subjects they travel on
(``$JS.API.STREAM.MSG.DELETE.<stream>``, the delete and purge markers published to a bucket's
``$KV.<bucket>.>``, the delete markers published to an object store's ``$O.<bucket>.M.>``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import nats.errors
import nats.js.errors
from faststream import AckPolicy, Context, FastStream
from faststream.nats import JStream, KvWatch, NatsBroker, ObjWatch, PullSub, TestNatsBroker
from faststream.nats.message import NatsBatchMessage, NatsKvMessage, NatsMessage, NatsObjMessage
from nats.aio.client import Client
from typing_extensions import Self

import msgdel
from msgdel.adapters.nats import JetStreamAdapter, KeyValueAdapter, ObjectStoreAdapter
from msgdel.address import Address, JetStreamSequence, KvKey
from msgdel.testing.conformance import Consumed, Handle, Harness
from tests.eventually import eventually

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.api import RawStreamMsg
    from nats.js.client import JetStreamContext

    from tests.testbed.nats import NatsServer

Message = Annotated[Any, Context("message")]
"""A handler parameter that receives FastStream's message object itself."""

WAIT = 30.0
"""Seconds to wait for the broker (consumption, a restart): generous on a busy CI machine."""

RECONNECTING = {"reconnect_time_wait": 0.1, "max_reconnect_attempts": -1}
"""Connection options of the harness's connections: back within 0.1 s of a restart."""

RESULT = b"handled"
"""What an app's handler returns where :meth:`NatsHarness.run_app` publishes its results."""


def unique(prefix: str) -> str:
    """A fresh stream, bucket or subject name."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def payload(index: int) -> bytes:
    """The body of the ``index``-th published message: unique, so it can be found on disk."""
    return f"{index}-{uuid.uuid4().hex}".encode()


def index_of(body: bytes) -> int:
    """The index :func:`payload` gave ``body``."""
    return int(body.partition(b"-")[0])


async def stream_entries(js: JetStreamContext, stream: str) -> list[RawStreamMsg]:
    """Every message ``stream`` still stores, in sequence order, read one by one."""
    state = (await js.stream_info(stream)).state
    found = []
    for seq in range(state.first_seq, state.last_seq + 1):
        try:
            found.append(await js.get_msg(stream, seq))
        except nats.js.errors.NotFoundError:
            continue  # deleted, or removed by a purge or a rollup
    return found


async def latest_entries(js: JetStreamContext, stream: str, prefix: str) -> list[RawStreamMsg]:
    """The latest message of every subject under ``prefix``, in sequence order."""
    latest: dict[str, RawStreamMsg] = {}
    for entry in await stream_entries(js, stream):
        if entry.subject and entry.subject.startswith(prefix):
            latest.pop(entry.subject, None)
            latest[entry.subject] = entry
    return list(latest.values())


async def subscribed(client: Client) -> None:
    """Wait until the server has every subscription ``client`` made so far.

    nats-py's ``flush`` writes its PING straight to the socket, ahead of commands its flusher
    task has not written yet (a SUB just made), so one PONG proves nothing about them; by the
    time it is back the flusher has written them, and a second PING follows them."""
    await client.flush()
    await client.flush()


class RequestCounter:
    """Counts the deletion requests the server routes on a harness's
    :meth:`~NatsHarness.request_subject`, seen by a core subscriber.

    NATS delivers one connection's messages in the order it sent them. A sentinel published
    on the connection that sent the deletions therefore arrives after every copy of them, and
    once it has, every request made so far has been counted.
    """

    def __init__(self, harness: NatsHarness, subscription: Subscription) -> None:
        self.harness = harness
        self.subscription = subscription
        self.seen = 0

    @classmethod
    async def start(cls, harness: NatsHarness, target: Any) -> RequestCounter:
        """Count the requests for ``target`` from now on."""
        subscription = await harness.reader.subscribe(harness.request_subject(target))
        await subscribed(harness.reader)  # before any request is made
        return cls(harness, subscription)

    async def count(self) -> int:
        """The requests seen since :meth:`start`."""
        reader = self.harness.reader
        sentinel = await reader.subscribe(reader.new_inbox())
        try:
            await subscribed(reader)
            await self.harness.send_sentinel(sentinel.subject)
            await sentinel.next_msg(timeout=WAIT)
        finally:
            await sentinel.unsubscribe()
        while self.subscription.pending_msgs:
            if self.harness.is_request(await self.subscription.next_msg()):
                self.seen += 1
        return self.seen


class NatsHarness(Harness):
    """What every NATS harness shares: the server, a reader connection, FastStream brokers
    that consume or run an app, deletion requests counted at the server, and a restart.

    Use it as ``async with SomeHarness(server) as harness``. A subclass says how to fill a
    fresh target (:meth:`create`), how FastStream subscribes to it (:meth:`subscription`),
    which deliveries count (:meth:`accepts`), each message's ids and index, and where its
    deletion requests travel (:meth:`request_subject`).
    """

    restartable = True

    def __init__(self, server: NatsServer, *, domain: str | None = None) -> None:
        self.server = server
        self.domain = domain
        """The JetStream domain the harness works in (None: the server's own API)."""
        self.reader = Client()
        self._registry = msgdel.Registry()
        self._links: dict[str, bool] = {}
        self._counters: dict[Any, RequestCounter] = {}
        self._consumer: NatsBroker | None = None
        self.deliveries: list[Any] = []
        """Every message the :meth:`consumed` handler received, a watcher's own deletes too."""

    # -- the connections ---------------------------------------------------------------
    def clients(self) -> dict[str, Client]:
        """The nats-py connections of the harness's own, by name."""
        return {"reader": self.reader}

    async def __aenter__(self) -> Self:
        for name, client in self.clients().items():
            await self.connect(client, name)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for client in self.clients().values():
            await client.close()

    @property
    def js(self) -> JetStreamContext:
        """JetStream through the reader connection: the broker's state, without msgdel."""
        return self.reader.jetstream(domain=self.domain)

    def _watch(self, name: str) -> dict[str, Any]:
        """Connection options that keep ``self._links[name]`` saying whether it is up."""

        async def disconnected() -> None:
            self._links[name] = False

        async def reconnected() -> None:
            self._links[name] = True

        return {"disconnected_cb": disconnected, "reconnected_cb": reconnected, **RECONNECTING}

    async def connect(self, client: Client, name: str) -> None:
        """Connect a nats-py client of the harness's own."""
        await client.connect(self.server.url, **self._watch(name))
        self._links[name] = True

    def broker(self, **options: Any) -> NatsBroker:
        """A FastStream broker on the server, its connection watched through restarts."""
        if self.domain is not None:
            options["js_options"] = {"domain": self.domain}
        return NatsBroker(self.server.url, logger=None, **self._watch("consumer"), **options)

    @property
    def consumer(self) -> NatsBroker:
        """The FastStream broker of the :meth:`consumed` block that is open."""
        assert self._consumer is not None, "only inside consumed()"
        return self._consumer

    # -- what a subclass says ------------------------------------------------------------
    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    async def create(self, count: int) -> tuple[Any, list[tuple[str, ...]]]:
        """Make a fresh target holding ``count`` messages; return it and their ids."""
        raise NotImplementedError

    def subject(self, target: Any) -> str:
        """The subject FastStream publishes the target's messages to."""
        raise NotImplementedError

    def subscription(self, target: Any) -> dict[str, Any]:
        """What ``broker.subscriber`` takes to subscribe to ``target``."""
        raise NotImplementedError

    def subscribe(
        self,
        broker: NatsBroker,
        target: Any,
        handler: Any,
        ack_policy: AckPolicy | None,
        *,
        publish_to: str | None = None,
    ) -> None:
        """Subscribe ``handler`` to ``target`` on ``broker`` (``ack_policy`` None: FastStream's
        default); with ``publish_to``, what it returns is published to that core subject."""
        options = self.subscription(target)
        if ack_policy is not None:
            options["ack_policy"] = ack_policy
        if publish_to is not None:
            handler = broker.publisher(publish_to)(handler)
        with warnings.catch_warnings():
            # FastStream warns that a KV or object-store watch acknowledges nothing at the
            # broker; it still keeps the policy, and the middleware follows it
            warnings.filterwarnings("ignore", "You can't use acknowledgement policy")
            broker.subscriber(**options)(handler)

    async def publish_live(self, broker: NatsBroker, target: Any, count: int) -> None:
        """Publish what only a running subscriber receives (core NATS)."""

    def accepts(self, message: Any) -> bool:
        """Whether a delivery is one of the published messages (not a watcher's own delete)."""
        return True

    def ids(self, message: Any) -> tuple[str, ...]:
        """The ids the adapter reports for ``message``."""
        raise NotImplementedError

    def index(self, message: Any) -> int:
        """Which published message ``message`` is (0 for the first)."""
        raise NotImplementedError

    def request_subject(self, target: Any) -> str:
        """Where the deletion requests for ``target`` travel."""
        raise NotImplementedError

    def is_request(self, msg: Msg) -> bool:
        """Whether a message seen on :meth:`request_subject` is a deletion request."""
        return True

    async def send_sentinel(self, subject: str) -> None:
        """Publish on the connection that sends the deletions (see :class:`RequestCounter`)."""
        await self.consumer.publish(b"", subject)

    # -- the kit's hooks -----------------------------------------------------------------
    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        target, _ = await self.create(count)
        self._counters[target] = await RequestCounter.start(self, target)
        got: list[Any] = []
        done = asyncio.Event()

        async def handle(message: Message) -> None:
            self.deliveries.append(message)
            if self.accepts(message) and len(got) < count:
                got.append(message)
                if len(got) == count:
                    done.set()

        broker = self.broker()
        self.subscribe(broker, target, handle, AckPolicy.MANUAL)
        try:
            async with broker:
                await broker.start()
                self._links["consumer"], self._consumer = True, broker
                await self.publish_live(broker, target, count)
                await asyncio.wait_for(done.wait(), WAIT)
                messages = sorted(got, key=self.index)
                yield Consumed(target, messages, [self.ids(m) for m in messages])
        finally:
            self._links.pop("consumer", None)
            self._consumer = None
            await self._counters.pop(target).subscription.unsubscribe()

    async def requests(self, target: Any) -> int:
        return await self._counters[target].count()

    @asynccontextmanager
    async def in_memory(self, count: int) -> AsyncIterator[list[Any]]:
        target = unique("memory")
        got: list[Any] = []

        async def handle(message: Message) -> None:
            got.append(message)

        broker = NatsBroker(logger=None)
        self.subscribe(broker, target, handle, None)
        async with TestNatsBroker(broker) as test_broker:
            for i in range(count):
                await test_broker.publish(payload(i), self.subject(target))
            yield got

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
        """With ``publishes`` the handler returns :data:`RESULT`, published to the core
        subject ``<target>.out``, which no stream or subscriber of the harness takes."""
        target, ids = await self.create(count)
        handled: set[int] = set()
        done = asyncio.Event()

        async def handler(message: Message) -> bytes | None:
            if not self.accepts(message):
                return None  # a watcher's own delete: the middleware finds it gone already
            index = self.index(message)
            try:
                if handle is not None:
                    await handle(index, message)
            finally:
                handled.add(index)
                if len(handled) == count:
                    done.set()
            return RESULT if publishes else None

        middlewares = list(middleware) if isinstance(middleware, Sequence) else [middleware]
        # graceful_timeout: stopping waits for the handlers in flight, their deletions too
        broker = self.broker(middlewares=middlewares, graceful_timeout=WAIT)
        publish_to = f"{target}.out" if publishes else None
        self.subscribe(broker, target, handler, ack_policy, publish_to=publish_to)
        app = FastStream(broker, logger=None, on_shutdown=[on_shutdown] if on_shutdown else [])
        await app.start()
        try:
            self._links["consumer"] = True
            await self.publish_live(broker, target, count)
            await asyncio.wait_for(done.wait(), WAIT)
        finally:
            await app.stop()
            self._links.pop("consumer", None)
        return Consumed(target, [], ids)

    async def stop(self) -> None:
        """Stop the server, and wait until every connection of the harness has noticed, so
        that a deletion meets a reconnecting client. The session's server is stopped: the
        tests of one run take turns on it, and its port and store survive the restart."""
        await asyncio.to_thread(self.server.stop)
        assert await eventually(lambda: any(self._links.values()), False, within=WAIT) is False

    async def start(self) -> None:
        """Start the server again, and wait until every connection is back."""
        await asyncio.to_thread(self.server.start)
        assert await eventually(lambda: all(self._links.values()), True, within=WAIT) is True


# -- JetStream ----------------------------------------------------------------------------------
class JetStreamHarness(NatsHarness):
    """``NatsMessage`` from a limits stream, through a push or (``pull=True``) a pull
    subscriber; ``adapter`` replaces the built-in ``JetStreamAdapter()`` (say, to erase);
    ``stream`` adds to the stream's configuration (``retention``, ``deny_delete``, ...)."""

    BATCH = 1
    """Stream messages per FastStream message."""

    def __init__(
        self,
        server: NatsServer,
        *,
        pull: bool = False,
        adapter: JetStreamAdapter | None = None,
        stream: dict[str, Any] | None = None,
        domain: str | None = None,
    ) -> None:
        super().__init__(server, domain=domain)
        self.pull = pull
        self.stream = stream or {}
        if adapter is not None:
            self._registry.register(NatsMessage, adapter)
            self._registry.register(NatsBatchMessage, adapter)

    @property
    def message_type(self) -> type:
        return NatsMessage

    def subject(self, target: Any) -> str:
        return f"{target}.in"

    async def create(self, count: int) -> tuple[Any, list[tuple[str, ...]]]:
        stream = unique("js")
        await self.js.add_stream(name=stream, subjects=[self.subject(stream)], **self.stream)
        seqs = [
            str((await self._publish(self.subject(stream), payload(i))).seq)
            for i in range(count * self.BATCH)
        ]
        return stream, [tuple(seqs[i : i + self.BATCH]) for i in range(0, len(seqs), self.BATCH)]

    async def _publish(self, subject: str, body: bytes) -> Any:
        """Publish to a stream just created: on a cluster the stream's interest in its subject
        reaches the node published through a moment after `add_stream` returned, and until
        then nothing answers (no responders: nothing was stored, so publishing again cannot
        store it twice)."""
        for _ in range(50):
            try:
                return await self.js.publish(subject, body)
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.1)
        return await self.js.publish(subject, body)

    def delivery(self, stream: str) -> dict[str, Any]:
        """How the subscriber receives: pushed, or pulled by a durable consumer."""
        if self.pull:
            return {"pull_sub": PullSub(batch_size=10, timeout=1), "durable": stream}
        return {}

    def subscription(self, target: Any) -> dict[str, Any]:
        stream = JStream(target, declare=False)
        return {"subject": self.subject(target), "stream": stream, **self.delivery(target)}

    def index(self, message: Any) -> int:
        return index_of(message.body)

    def ids(self, message: Any) -> tuple[str, ...]:
        return (str(message.raw_message.metadata.sequence.stream),)

    def request_subject(self, target: Any) -> str:
        return f"$JS.API.STREAM.MSG.DELETE.{target}"

    async def stored(self, target: Any) -> list[str]:
        return [str(entry.seq) for entry in await stream_entries(self.js, target)]

    def addresses(self, consumed: Consumed) -> list[Address]:
        return [JetStreamSequence(consumed.target, int(s)) for ids in consumed.ids for s in ids]

    def connection(self) -> str:
        return str(self.server.url)


class JetStreamBatchHarness(JetStreamHarness):
    """``NatsBatchMessage`` of :data:`BATCH` stream messages each, from a pull subscriber.

    The messages are in the stream before the subscriber starts, so every fetch gets a full
    batch: the ``index``-th batch holds the ``BATCH`` messages published from ``index * BATCH``.
    """

    BATCH = 2

    def __init__(self, server: NatsServer, *, adapter: JetStreamAdapter | None = None) -> None:
        super().__init__(server, pull=True, adapter=adapter)

    @property
    def message_type(self) -> type:
        return NatsBatchMessage

    def delivery(self, stream: str) -> dict[str, Any]:
        batch = PullSub(batch_size=self.BATCH, batch=True, timeout=1)
        return {"pull_sub": batch, "durable": stream}

    def index(self, message: Any) -> int:
        return index_of(message.raw_message[0].data) // self.BATCH

    async def nack(self, message: Any) -> None:
        # Nacked without a delay, a batch is fetched again before the batches behind it, and
        # on a busy machine a fetch of two can keep getting it back: those never arrive.
        await message.nack(delay=0.2)

    def ids(self, message: Any) -> tuple[str, ...]:
        return tuple(str(m.metadata.sequence.stream) for m in message.raw_message)


class CoreNatsHarness(NatsHarness):
    """``NatsMessage`` from a core NATS subscription: the server stores nothing, the adapter
    (the ``JetStreamAdapter``, which declares ``EXACT``) reports ``NOT_STORED`` and sends no
    request; requests to delete from any stream are counted."""

    @property
    def message_type(self) -> type:
        return NatsMessage

    @property
    def semantics(self) -> msgdel.Semantics:
        return msgdel.Semantics.NOT_STORED

    def subject(self, target: Any) -> str:
        return str(target)

    async def create(self, count: int) -> tuple[Any, list[tuple[str, ...]]]:
        return unique("core"), [()] * count

    def subscription(self, target: Any) -> dict[str, Any]:
        return {"subject": self.subject(target)}

    async def publish_live(self, broker: NatsBroker, target: Any, count: int) -> None:
        # on the subscriber's own connection, so the server has its subscription by then
        for i in range(count):
            await broker.publish(payload(i), self.subject(target))

    def index(self, message: Any) -> int:
        return index_of(message.body)

    def ids(self, message: Any) -> tuple[str, ...]:
        return ()

    def request_subject(self, target: Any) -> str:
        return "$JS.API.STREAM.MSG.DELETE.>"

    async def stored(self, target: Any) -> list[str]:
        return []  # core NATS keeps nothing


# -- KV and object store ------------------------------------------------------------------------
class BucketHarness(NatsHarness):
    """What the KV and object-store harnesses share: their adapter deletes through a nats-py
    connection of the harness's own (entries carry no connection), which also sends the
    counting sentinel. FastStream's ``TestNatsBroker`` cannot deliver watch entries (it hands a
    watch subscriber a NATS message, which FastStream's entry parser refuses), so there is no
    in-memory variant."""

    def __init__(self, server: NatsServer) -> None:
        super().__init__(server)
        self.deleter = Client()

    def clients(self) -> dict[str, Client]:
        return {**super().clients(), "deleter": self.deleter}

    async def create(self, count: int) -> tuple[Any, list[tuple[str, ...]]]:
        bucket = unique(self.prefix)
        await self.create_bucket(bucket)
        names = [f"{self.prefix[0]}{i:03d}" for i in range(count)]
        for name in names:
            await self.write(bucket, name, name.encode().ljust(self.size, b"."))
        return bucket, [(name,) for name in names]

    prefix = "bucket"
    """Starts the bucket's name; its first letter starts the entries' names."""
    size = 4
    """The bytes of each entry's value."""

    async def create_bucket(self, bucket: str) -> None:
        raise NotImplementedError

    async def write(self, bucket: str, name: str, data: bytes) -> None:
        """Put ``data`` under ``name`` in ``bucket``, with nats-py."""
        raise NotImplementedError

    async def read(self, bucket: str, name: str) -> bytes:
        """What ``name`` holds in ``bucket``, with nats-py."""
        raise NotImplementedError

    def index(self, message: Any) -> int:
        return int(self.ids(message)[0][1:])

    async def send_sentinel(self, subject: str) -> None:
        await self.deleter.publish(subject, b"")

    def in_memory(self, count: int) -> AbstractAsyncContextManager[list[Any]]:
        raise NotImplementedError("TestNatsBroker cannot deliver KV or object-store entries")


class KeyValueHarness(BucketHarness):
    """``NatsKvMessage`` from a KV watch of a bucket with one key per message; ``options``
    go to the ``KeyValueAdapter`` (``purge=True``)."""

    def __init__(self, server: NatsServer, **options: Any) -> None:
        super().__init__(server)
        self._registry.register(NatsKvMessage, KeyValueAdapter(self.deleter, **options))

    @property
    def message_type(self) -> type:
        return NatsKvMessage

    prefix = "kv"

    async def create_bucket(self, bucket: str) -> None:
        await self.js.create_key_value(bucket=bucket, history=5)

    async def write(self, bucket: str, name: str, data: bytes) -> None:
        await (await self.js.key_value(bucket)).put(name, data)

    async def read(self, bucket: str, name: str) -> bytes:
        return (await (await self.js.key_value(bucket)).get(name)).value or b""

    def subscription(self, target: Any) -> dict[str, Any]:
        return {"subject": ">", "kv_watch": KvWatch(target, declare=False)}

    def accepts(self, message: Any) -> bool:
        return message.raw_message.operation not in KV_MARKERS

    def ids(self, message: Any) -> tuple[str, ...]:
        return (message.raw_message.key,)

    def request_subject(self, target: Any) -> str:
        return f"$KV.{target}.>"

    def is_request(self, msg: Msg) -> bool:
        return (msg.headers or {}).get("KV-Operation") in KV_MARKERS

    async def stored(self, target: Any) -> list[str]:
        """The keys whose latest entry is a value, not a delete or purge marker."""
        prefix = f"$KV.{target}."
        return [
            entry.subject.removeprefix(prefix)
            for entry in await latest_entries(self.js, f"KV_{target}", prefix)
            if (entry.headers or {}).get("KV-Operation") not in KV_MARKERS
        ]

    def addresses(self, consumed: Consumed) -> list[Address]:
        return [KvKey(consumed.target, key) for ids in consumed.ids for key in ids]

    def connection(self) -> str:
        return str(self.server.url)


KV_MARKERS = ("DEL", "PURGE")
"""The ``KV-Operation`` of the entries that mark a key deleted (a put has none)."""


class ObjectStoreHarness(BucketHarness):
    """``NatsObjMessage`` from an object-store watch of a bucket with one object per message,
    ``size`` bytes each (the default fits in one chunk)."""

    def __init__(self, server: NatsServer, *, size: int = BucketHarness.size) -> None:
        super().__init__(server)
        self.size = size
        self._registry.register(NatsObjMessage, ObjectStoreAdapter(self.deleter))

    @property
    def message_type(self) -> type:
        return NatsObjMessage

    prefix = "obj"

    async def create_bucket(self, bucket: str) -> None:
        await self.js.create_object_store(bucket)

    async def write(self, bucket: str, name: str, data: bytes) -> None:
        await (await self.js.object_store(bucket)).put(name, data)

    async def read(self, bucket: str, name: str) -> bytes:
        return (await (await self.js.object_store(bucket)).get(name)).data or b""

    def subscription(self, target: Any) -> dict[str, Any]:
        return {"subject": target, "obj_watch": ObjWatch(declare=False)}

    def accepts(self, message: Any) -> bool:
        return not message.raw_message.deleted

    def ids(self, message: Any) -> tuple[str, ...]:
        return (message.raw_message.name,)

    def request_subject(self, target: Any) -> str:
        return f"$O.{target}.M.>"

    def is_request(self, msg: Msg) -> bool:
        return bool(json.loads(msg.data).get("deleted"))

    async def stored(self, target: Any) -> list[str]:
        """The objects still listed: the latest meta entry of each name is not a deletion."""
        metas = [
            json.loads(entry.data or b"{}")
            for entry in await latest_entries(self.js, f"OBJ_{target}", f"$O.{target}.M.")
        ]
        return [meta["name"] for meta in metas if not meta.get("deleted")]
