"""What the aiokafka (tests/kafka) and confluent-kafka (tests/confluent) suites share.

Both clients talk to the same Apache Kafka and their adapters share one implementation
(``msgdel/adapters/_kafka_common.py``), so their specs are written once, here, against a
:class:`KafkaClient`: the one client library a backend directory drives (its FastStream
classes, its msgdel adapter, and set-up and broker reads through its own producer, consumer
and admin client, never through msgdel). ``tests/kafka/harness.py`` and
``tests/confluent/harness.py`` implement it; the test modules there subclass the conformance
variants and :class:`KafkaSpecs` below, and their ``conftest.py`` provides the ``client``.

This module imports neither client: it lives outside both backend directories so that each
imports it where the other client is not installed.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, ClassVar

import attrs
import pytest
from faststream import Context, FastStream

import msgdel
from msgdel import DeleteResult, NotDeletable, Outcome, Semantics, UnsupportedDeletion
from msgdel.address import Address, KafkaOffset
from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from msgdel.testing.conformance import AdapterConformance, Consumed, Handle, Harness

Server = Any
"""A test bed ``KafkaServer`` (or ``KafkaCluster``): ``.url`` (CSV), ``.servers`` (list)."""
Record = tuple[int, "bytes | None", "bytes | None"]
"""A record as the broker returns it: (offset, key, value)."""


MESSAGE = Context("message")
"""A FastStream handler's message object, for either client."""

RESULT = b"handled"
"""What an app's handler returns where :func:`serve` publishes its results."""


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@attrs.frozen
class Partition:
    """One partition of a topic: where the kit's messages live."""

    topic: str
    partition: int = 0

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"  # as DeleteResult.target names it


class KafkaClient(abc.ABC):
    """One Kafka client library, as the shared specs drive it."""

    broker_name: ClassVar[str]
    """``DeleteResult.broker`` of its adapter."""
    adapter_class: ClassVar[type]
    """Its msgdel adapter."""
    message_type: ClassVar[type]
    """FastStream's message class for this client."""
    broker_class: ClassVar[type]
    """FastStream's broker."""
    test_broker_class: ClassVar[type]
    """FastStream's in-memory test broker."""
    ackable_type: ClassVar[type | None] = None
    """FastStream's acknowledgeable message class, where this client has one."""
    ackable_options: ClassVar[dict[str, Any]] = {}
    """The subscriber options that make FastStream deliver :attr:`ackable_type`."""
    batch_options: ClassVar[dict[str, Any]] = {}
    """Subscriber options, beside ``batch=True, max_records=...``, for batch messages."""

    def adapter(self, strategy: str = "truncate", **options: Any) -> Any:
        return self.adapter_class(strategy, **options)

    def faststream_broker(self, server: Server | None, **options: Any) -> Any:
        """A FastStream broker on ``server`` (none: for the in-memory test broker)."""
        where = () if server is None else (self.bootstrap(server),)
        return self.broker_class(*where, logger=None, **options)

    def test_broker(self, broker: Any) -> Any:
        return self.test_broker_class(broker)

    def batches_of(self, records: int) -> dict[str, Any]:
        """Subscriber options for batch messages of up to ``records`` records."""
        return {"batch": True, "max_records": records, **self.batch_options}

    def records_of(self, message: Any) -> list[tuple[int, int, bytes | None]]:
        """(partition, offset, key) of each record a single or batch message holds (a list
        under the in-memory test broker)."""
        raw = message.raw_message
        return [self.record(r) for r in (raw if isinstance(raw, (tuple, list)) else [raw])]

    async def create_topic(
        self,
        server: Server,
        topic: str,
        *,
        assignment: Sequence[Sequence[int]] = (),
        configs: dict[str, str] | None = None,
    ) -> None:
        """Create ``topic``: one partition, or one per ``assignment`` entry (its replicas)."""
        await self.create(server, topic, [list(r) for r in assignment], configs or {})

    # -- what each client implements ---------------------------------------------------------
    @abc.abstractmethod
    def bootstrap(self, server: Server) -> Any:
        """``server``'s bootstrap addresses as this client's FastStream broker takes them."""

    @abc.abstractmethod
    def record(self, raw: Any) -> tuple[int, int, bytes | None]:
        """(partition, offset, key) of one of this client's consumed records."""

    @abc.abstractmethod
    async def create(
        self, server: Server, topic: str, replicas: list[list[int]], configs: dict[str, str]
    ) -> None:
        """Create ``topic`` with one partition per ``replicas`` entry (one if empty)."""

    @abc.abstractmethod
    async def produce(
        self, server: Server, topic: str, keys: Sequence[bytes | None], *, partition: int = 0
    ) -> None:
        """One record per key (value ``m<i>``) to ``partition``, in order, acknowledged."""

    @abc.abstractmethod
    async def log_range(self, server: Server, topic: str, partition: int = 0) -> tuple[int, int]:
        """(log start offset, log end offset), as the broker reports them."""

    @abc.abstractmethod
    async def read_all(self, server: Server, topic: str, partition: int = 0) -> list[Record]:
        """Every record still readable in the partition."""

    @abc.abstractmethod
    async def commit(self, server: Server, group: str, topic: str, offset: int) -> None:
        """Commit ``offset`` on partition 0 of ``topic`` for ``group``."""


def deletion_requests(server: Server, target: Partition) -> int:
    """How many DeleteRecords requests moved ``target``'s log start, read from the broker's
    own log: its partition leader logs each one ("Incremented log start offset to N due to
    client delete records request"; the test bed's log4j2.yaml keeps that line).

    Kafka counts requests only in JMX metrics (``kafka.network:type=RequestMetrics``, not
    per topic), which the test bed does not expose. A request that moves nothing is not
    logged; the adapters never send one (they skip partitions already truncated that far).
    """
    marker = f"[UnifiedLog partition={target.topic}-{target.partition}, "
    count = 0
    for node in getattr(server, "nodes", [server]):
        with open(node.log_path, errors="replace") as log:
            count += sum(1 for line in log if marker in line and "client delete records" in line)
    return count


@attrs.define
class Subscription:
    """A running FastStream subscriber and what it consumed so far."""

    broker: Any
    messages: list[Any] = attrs.field(factory=list)


@contextlib.asynccontextmanager
async def consuming(
    client: KafkaClient,
    server: Server,
    topics: str | Sequence[str],
    records: int,
    **options: Any,
) -> AsyncIterator[Subscription]:
    """A FastStream subscriber (group ``main``, from the earliest offset) on ``topics``,
    once it has consumed ``records`` records; ``options`` go to the subscriber."""
    broker = client.faststream_broker(server)
    running = Subscription(broker)
    done = asyncio.Event()
    names = [topics] if isinstance(topics, str) else list(topics)

    @broker.subscriber(*names, **{"group_id": "main", "auto_offset_reset": "earliest", **options})
    async def handle(body: Any, message: Any = MESSAGE) -> None:
        running.messages.append(message)
        if sum(len(client.records_of(m)) for m in running.messages) >= records:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 30)
        yield running


async def serve(
    client: KafkaClient,
    server: Server,
    topic: str,
    records: int,
    middleware: DeleteMiddleware | Sequence[Any],
    *,
    handle: Callable[[Any], Awaitable[None]] | None = None,
    on_shutdown: Callable[[], Awaitable[None]] | None = None,
    publish_to: str | None = None,
    **options: Any,
) -> None:
    """Run a FastStream app whose broker has ``middleware`` (one, or a sequence, outermost
    first) until its handler has handled every one of the ``records`` records of ``topic``
    (awaiting ``handle(message)`` for every delivery), await ``on_shutdown`` while the broker
    is still connected, and stop the app. ``options`` go to the subscriber (group ``app``,
    from the earliest offset). With ``publish_to`` the handler returns :data:`RESULT`,
    published to that topic."""
    middlewares = list(middleware) if isinstance(middleware, Sequence) else [middleware]
    # graceful_timeout: stopping waits for the last handlers' middleware (their deletions).
    broker = client.faststream_broker(server, middlewares=middlewares, graceful_timeout=30)
    app = FastStream(broker)
    if on_shutdown is not None:
        app.on_shutdown(on_shutdown)
    handled: set[tuple[int, int]] = set()
    done = asyncio.Event()

    async def handler(body: Any, message: Any = MESSAGE) -> bytes | None:
        handled.update((partition, offset) for partition, offset, _ in client.records_of(message))
        if len(handled) >= records:
            done.set()
        if handle is not None:
            await handle(message)
        return None if publish_to is None else RESULT

    call: Any = handler if publish_to is None else broker.publisher(publish_to)(handler)
    broker.subscriber(topic, **{"group_id": "app", "auto_offset_reset": "earliest", **options})(
        call
    )

    await app.start()
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await app.stop()


# -- the conformance kit ---------------------------------------------------------------------
class KafkaHarness(Harness):
    """The kit's harness for either client: fresh single-partition topics on ``server``.

    ``strategy="tombstone"`` publishes to a compacted topic, one key per record; ``batch``
    subscribes for batch messages of two records each; ``restartable`` lets the kit stop
    ``server`` (a node of the test's own). ``options`` go to the adapter, which the harness
    then builds and closes itself (else the registry builds the default one).
    """

    def __init__(
        self,
        client: KafkaClient,
        server: Server,
        *,
        message_type: type | None = None,
        strategy: str = "truncate",
        batch: bool = False,
        subscriber: dict[str, Any] | None = None,
        restartable: bool = False,
        **options: Any,
    ) -> None:
        self.client = client
        self.server = server
        self._message_type = message_type or client.message_type
        self.strategy = strategy
        self.per_message = 2 if batch else 1
        self.subscriber = {**(subscriber or {}), **(client.batches_of(2) if batch else {})}
        self.restartable = restartable
        self._registry = msgdel.Registry()
        self._own = None
        if strategy != "truncate" or options:
            self._own = client.adapter(strategy, **options)
            # an ack policy other than ACK_FIRST delivers the acknowledgeable class, for which
            # the registry has a built-in adapter of its own (the MRO's closest)
            for message_class in dict.fromkeys((self._message_type, client.ackable_type)):
                if message_class is not None:
                    self._registry.register(message_class, self._own)
        self.running: Subscription | None = None
        self.last: Consumed | None = None
        """What the latest :meth:`consumed` block yielded."""
        self.outage = 0.0
        """Seconds from the end of :meth:`stop` to the call of :meth:`start`."""
        self._stopped_at = 0.0

    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    @property
    def message_type(self) -> type:
        return self._message_type

    async def aclose(self) -> None:
        if self._own is not None:
            await self._own.aclose()

    async def _fresh(self, records: int) -> Partition:
        target = Partition(unique(f"kit-{self.strategy}"))
        if self.strategy == "tombstone":
            configs = {"cleanup.policy": "compact"}
            await self.client.create_topic(self.server, target.topic, configs=configs)
        keys = [f"k{i}".encode() for i in range(records)]
        await self.client.produce(self.server, target.topic, keys)
        return target

    @contextlib.asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        records = count * self.per_message
        target = await self._fresh(records)
        async with consuming(
            self.client, self.server, target.topic, records, **self.subscriber
        ) as running:
            messages = list(running.messages)  # a tombstone written later is consumed too
            got = [self.client.records_of(m) for m in messages]
            if [type(m) for m in messages] != [self.message_type] * count or any(
                len(r) != self.per_message for r in got
            ):
                raise AssertionError(
                    f"FastStream delivered {[type(m).__name__ for m in messages]} holding "
                    f"{[len(r) for r in got]} records, not {count} {self.message_type.__name__}"
                    f" of {self.per_message}"
                )
            ids = [tuple(str(offset) for _, offset, _ in r) for r in got]
            keys = [r[0][2].decode() if r[0][2] else None for r in got] if records == count else []
            self.running, self.last = running, Consumed(target, messages, ids, keys)
            try:
                yield self.last
            finally:
                self.running = None

    def addresses(self, consumed: Consumed) -> list[Address]:
        if self.strategy != "truncate":  # an offset names no key to tombstone
            raise NotImplementedError
        part = consumed.target
        return [
            KafkaOffset(part.topic, part.partition, int(o)) for ids in consumed.ids for o in ids
        ]

    def connection(self) -> str:
        return f"kafka://{self.server.url}"

    async def stored(self, target: Any) -> list[str]:
        """The offsets from the partition's log start to its end."""
        start, end = await self.client.log_range(self.server, target.topic, target.partition)
        return [str(offset) for offset in range(start, end)]

    async def tombstoned(self, target: Any) -> list[str]:
        """The keys whose latest record in the partition has a null value."""
        latest: dict[bytes | None, bytes | None] = {}
        for _, key, value in await self.client.read_all(
            self.server, target.topic, target.partition
        ):
            latest[key] = value
        return sorted(key.decode() for key, value in latest.items() if key and value is None)

    async def requests(self, target: Any) -> int:
        """Truncation: the DeleteRecords requests the leader logged for the partition (see
        :func:`deletion_requests`). Tombstones: the null records written to it (Kafka counts
        produce requests only in JMX; the kit needs this count only to see that a refused
        deletion wrote nothing)."""
        if self.strategy == "tombstone":
            return len(await self.tombstoned(target))
        return deletion_requests(self.server, target)

    @contextlib.asynccontextmanager
    async def in_memory(self, count: int) -> AsyncIterator[list[Any]]:
        broker = self.client.faststream_broker(None)
        messages: list[Any] = []

        @broker.subscriber("in-memory", auto_offset_reset="earliest", **self.subscriber)
        async def handle(body: Any, message: Any = MESSAGE) -> None:
            messages.append(message)

        async with self.client.test_broker(broker) as test_broker:
            for i in range(count):
                await test_broker.publish(f"m{i}", "in-memory", key=f"k{i}".encode())
            yield messages

    async def run_app(
        self,
        middleware: Any,
        count: int,
        *,
        handle: Handle | None = None,
        ack_policy: Any = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        publishes: bool = False,
    ) -> Consumed:
        """With ``publishes`` the handler's results go to a fresh topic of their own."""
        per = self.per_message
        target = await self._fresh(count * per)
        output = None
        if publishes:
            output = unique("kit-out")
            await self.client.create_topic(self.server, output)

        async def indexed(message: Any) -> None:
            index = self.client.records_of(message)[0][1] // per  # a batch: its first record's
            if handle is not None and index < count:  # not a tombstone a deletion wrote
                await handle(index, message)

        options = dict(self.subscriber)
        if ack_policy is not None:
            options["ack_policy"] = ack_policy
        await serve(
            self.client,
            self.server,
            target.topic,
            count * per,
            middleware,
            handle=indexed,
            on_shutdown=on_shutdown,
            publish_to=output,
            **options,
        )
        ids = [tuple(str(o) for o in range(i * per, (i + 1) * per)) for i in range(count)]
        keys = [f"k{i}" for i in range(count)] if per == 1 else []  # as _fresh() wrote them
        return Consumed(target, [], ids, keys)

    async def stop(self) -> None:
        # FastStream's consumer stops first: under test are msgdel's own clients, and an
        # aiokafka group consumer can stall for good in its coordinator loop across a fault.
        if self.running is not None:
            await self.running.broker.stop()
        await asyncio.to_thread(self.server.stop)
        self._stopped_at = time.monotonic()

    async def start(self) -> None:
        self.outage = time.monotonic() - self._stopped_at
        await asyncio.to_thread(self.server.start)


class KafkaConformance(AdapterConformance):
    """The kit on one harness variant; subclasses set the variant, the backend's
    ``conftest.py`` the ``client``."""

    strategy: ClassVar[str] = "truncate"
    batch: ClassVar[bool] = False
    ackable: ClassVar[bool] = False

    def build(self, client: KafkaClient, server: Server, **options: Any) -> KafkaHarness:
        message_type, subscriber = None, {}
        if self.ackable:
            message_type, subscriber = client.ackable_type, client.ackable_options
        return KafkaHarness(
            client,
            server,
            message_type=message_type,
            strategy=self.strategy,
            batch=self.batch,
            subscriber=subscriber,
            **options,
        )

    @pytest.fixture
    async def harness(self, client: KafkaClient, kafka_server: Server) -> AsyncIterator[Harness]:
        harness = self.build(client, kafka_server)
        try:
            yield harness
        finally:
            await harness.aclose()


class Truncating(KafkaConformance):
    """KafkaMessage, strategy truncate (PREFIX): the broker-restart case on a node of its own."""

    @pytest.fixture
    async def restartable(
        self, client: KafkaClient, own_kafka: Server
    ) -> AsyncIterator[KafkaHarness]:
        harness = self.build(client, own_kafka, restartable=True, timeout=3)
        try:
            yield harness
        finally:
            await harness.registry.aclose()
            await harness.aclose()

    async def test_a_stopped_broker_fails_retryably_and_a_retry_deletes(
        self, restartable: KafkaHarness
    ) -> None:
        """On a Kafka node of this test's own, stopped and started again; the adapter's
        timeout (3 s), not the client's own (40-60 s), bounds the call that fails."""
        await super().test_a_stopped_broker_fails_retryably_and_a_retry_deletes(restartable)
        assert restartable.outage < 10
        got = restartable.last
        assert got is not None
        assert await restartable.stored(got.target) == [i for ids in got.ids[1:] for i in ids]


class TruncatingAckable(KafkaConformance):
    """The client's acknowledgeable message class (an ack policy other than ACK_FIRST)."""

    ackable = True


class TruncatingBatches(KafkaConformance):
    """Batch messages (a batch subscriber), two records each."""

    batch = True


class Tombstoning(KafkaConformance):
    """Strategy tombstone (TOMBSTONE) on a compacted topic."""

    strategy = "tombstone"


# -- the specs of the Kafka adapters -----------------------------------------------------------
class KafkaSpecs:
    """What the Kafka adapters do beyond the kit: their options, prefix truncation, tombstones,
    partitions on several brokers, and the middleware on PREFIX semantics."""

    @pytest.fixture
    async def adapter(self, client: KafkaClient) -> AsyncIterator[Any]:
        """A default adapter (truncate), closed after the test."""
        made = client.adapter()
        try:
            yield made
        finally:
            await made.aclose()

    async def test_a_message_before_the_log_start_is_already_gone(
        self, client: KafkaClient, kafka_server: Server, adapter: Any
    ) -> None:
        topic = unique("gone")
        await client.produce(kafka_server, topic, [None] * 3)
        async with consuming(client, kafka_server, topic, 3) as running:
            later = await adapter.delete(running.messages[1])
            earlier = await adapter.delete(running.messages[0])

        name, target = client.broker_name, f"{topic}[0]"
        assert later == DeleteResult(name, target, ("1",), Semantics.PREFIX, Outcome.DELETED, 2)
        assert earlier == DeleteResult(
            name, target, ("0",), Semantics.PREFIX, Outcome.ALREADY_GONE, 0
        )
        assert await client.log_range(kafka_server, topic) == (2, 3)
        assert [offset for offset, _, _ in await client.read_all(kafka_server, topic)] == [2]

    @pytest.mark.parametrize("where", ["kafka_server", "kafka_cluster"])
    async def test_by_default_truncation_waits_for_every_other_group_to_commit(
        self, client: KafkaClient, where: str, request: pytest.FixtureRequest
    ) -> None:
        """Two other groups read the topic: "billing" committed up to 1, "shipping" up to 2.
        The log start stops at the lowest (DEFERRED); as they catch up it follows; once both
        committed past the message, it is deleted."""
        server: Server = request.getfixturevalue(where)
        topic = unique("protect")
        await client.create_topic(server, topic, assignment=[[1]])
        await client.produce(server, topic, [None] * 4)
        await client.commit(server, "billing", topic, 1)
        await client.commit(server, "shipping", topic, 2)
        adapter = client.adapter()  # protect_groups=True is the default
        try:
            async with consuming(client, server, topic, 4) as running:
                capped = await adapter.delete(running.messages[3])
                assert await client.log_range(server, topic) == (1, 4)

                await client.commit(server, "billing", topic, 3)
                still = await adapter.delete(running.messages[3])
                assert await client.log_range(server, topic) == (2, 4)

                await client.commit(server, "shipping", topic, 4)
                await client.commit(server, "billing", topic, 4)
                caught_up = await adapter.delete(running.messages[3])
        finally:
            await adapter.aclose()

        assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
        assert (still.outcome, still.removed) == (Outcome.DEFERRED, 1)
        assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 2)
        assert await client.log_range(server, topic) == (4, 4)

    async def test_protect_groups_false_truncates_for_every_group_at_once(
        self, client: KafkaClient, kafka_server: Server
    ) -> None:
        topic = unique("unprotected")
        await client.produce(kafka_server, topic, [None] * 3)
        await client.commit(kafka_server, "lagging", topic, 0)
        adapter = client.adapter(protect_groups=False)
        try:
            async with consuming(client, kafka_server, topic, 3) as running:
                result = await adapter.delete(running.messages[2])
        finally:
            await adapter.aclose()
        assert (result.outcome, result.removed) == (Outcome.DELETED, 3)
        assert await client.log_range(kafka_server, topic) == (3, 3)

    @pytest.mark.parametrize("policy", ["compact", "delete"])
    async def test_a_tombstone_is_deferred_and_warns_unless_the_topic_is_compacted(
        self,
        client: KafkaClient,
        kafka_server: Server,
        policy: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        topic = unique(f"tombstone-{policy}")
        await client.create_topic(kafka_server, topic, configs={"cleanup.policy": policy})
        await client.produce(kafka_server, topic, [b"user-7"] * 2)
        adapter = client.adapter("tombstone")
        try:
            async with consuming(client, kafka_server, topic, 2) as running:
                with caplog.at_level(logging.WARNING, "msgdel.kafka"):
                    result = await adapter.delete(running.messages[1])
        finally:
            await adapter.aclose()

        assert result == DeleteResult(
            client.broker_name, f"{topic}[0]", ("1",), Semantics.TOMBSTONE, Outcome.DEFERRED, 0
        )
        assert (await client.read_all(kafka_server, topic))[-1] == (2, b"user-7", None)
        assert await client.log_range(kafka_server, topic) == (0, 3)  # nothing removed now
        assert ("without 'compact'" in caplog.text) is (policy == "delete")

    async def test_a_keyless_message_fails_alone_and_the_keyed_one_is_tombstoned(
        self, client: KafkaClient, kafka_server: Server
    ) -> None:
        topic = unique("keyless")  # not compacted: Kafka refuses keyless records there
        await client.produce(kafka_server, topic, [None, b"k"])
        adapter = client.adapter("tombstone")
        try:
            async with consuming(client, kafka_server, topic, 2) as running:
                keyless, keyed = await adapter.delete_many(running.messages)
        finally:
            await adapter.aclose()

        assert isinstance(keyless, NotDeletable)
        assert "no key" in str(keyless)
        assert (keyed.ids, keyed.outcome) == (("1",), Outcome.DEFERRED)
        assert await client.read_all(kafka_server, topic) == [
            (0, None, b"m0"),
            (1, b"k", b"m1"),
            (2, b"k", None),  # the one tombstone written
        ]

    async def test_a_partition_the_broker_refuses_fails_alone_and_the_others_are_truncated(
        self, client: KafkaClient, kafka_server: Server, adapter: Any
    ) -> None:
        """Kafka refuses DeleteRecords on a compact-only topic; both partitions have the same
        leader here, so the refusal and the deletion come in one answer."""
        compacted, plain = unique("compactonly"), unique("plain")
        await client.create_topic(kafka_server, compacted, configs={"cleanup.policy": "compact"})
        await client.produce(kafka_server, compacted, [b"k"])
        await client.produce(kafka_server, plain, [None])
        async with consuming(client, kafka_server, [compacted, plain], 2) as running:
            by_topic = {client.records_of(m)[0][2]: m for m in running.messages}
            refused, deleted = await adapter.delete_many([by_topic[b"k"], by_topic[None]])

        assert isinstance(refused, UnsupportedDeletion)
        assert "tombstone" in str(refused)
        assert (deleted.target, deleted.outcome, deleted.removed) == (
            f"{plain}[0]",
            Outcome.DELETED,
            1,
        )
        assert await client.log_range(kafka_server, compacted) == (0, 1)
        assert await client.log_range(kafka_server, plain) == (1, 1)

    async def test_delete_many_sends_one_request_to_each_partition_leader(
        self, client: KafkaClient, kafka_cluster: Server, adapter: Any
    ) -> None:
        topic = unique("leaders")
        await client.create_topic(kafka_cluster, topic, assignment=[[1, 2], [2, 3], [3, 1]])
        for partition in range(3):
            await client.produce(kafka_cluster, topic, [None] * 3, partition=partition)
        async with consuming(client, kafka_cluster, topic, 9) as running:
            # keep the second record of each partition and everything after it
            chosen = [m for m in running.messages if client.records_of(m)[0][1] == 0]
            results = await adapter.delete_many(chosen)

        assert sorted(r.target for r in results) == [f"{topic}[{p}]" for p in range(3)]
        assert all((r.outcome, r.removed) == (Outcome.DELETED, 1) for r in results)
        for partition in range(3):
            assert await client.log_range(kafka_cluster, topic, partition) == (1, 3)
            assert deletion_requests(kafka_cluster, Partition(topic, partition)) == 1

    async def test_delete_follows_the_partition_leader_when_its_broker_stops(
        self, client: KafkaClient, kafka_cluster: Server
    ) -> None:
        topic = unique("failover")
        await client.create_topic(kafka_cluster, topic, assignment=[[1, 2, 3]])
        await client.produce(kafka_cluster, topic, [None] * 3)
        # Not waiting for other groups: a stopped broker may coordinate some group, whose
        # offsets then cannot be read (DeletionFailed, retryable) until another one takes over.
        adapter = client.adapter(protect_groups=False)
        try:
            async with consuming(client, kafka_cluster, topic, 3) as running:
                first = await adapter.delete(running.messages[0])  # broker 1 leads it now
            # FastStream's consumer has stopped (see KafkaHarness.stop).
            await asyncio.to_thread(kafka_cluster.node(1).stop)
            try:
                second = await adapter.delete(running.messages[1])
                assert await client.log_range(kafka_cluster, topic) == (2, 3)
            finally:
                await asyncio.to_thread(kafka_cluster.node(1).start)
        finally:
            await adapter.aclose()

        assert (first.outcome, first.removed) == (Outcome.DELETED, 1)
        assert (second.outcome, second.removed) == (Outcome.DELETED, 1)

    @pytest.mark.parametrize("batched", [False, True], ids=["direct", "batcher"])
    async def test_a_failing_handler_keeps_its_record_until_a_later_one_of_its_partition_succeeds(
        self, client: KafkaClient, kafka_server: Server, batched: bool
    ) -> None:
        """The middleware on PREFIX semantics: a handled record's deletion truncates
        everything before it in its partition, the failed records too."""
        topic = unique("mw")
        await client.create_topic(kafka_server, topic, assignment=[[1], [1]])
        await client.produce(kafka_server, topic, [None] * 10, partition=0)  # m0 .. m9
        await client.produce(kafka_server, topic, [None] * 5, partition=1)  # m0 .. m4
        async with msgdel.Registry() as registry:
            batcher = Batcher(registry) if batched else None
            middleware = DeleteMiddleware(
                "success", batcher=batcher, registry=None if batched else registry
            )

            async def handle(message: Any) -> None:
                if message.body in (b"m2", b"m9"):
                    raise ValueError("the handler failed")

            shutdown = batcher.close if batcher is not None else None
            await serve(
                client, kafka_server, topic, 15, middleware, handle=handle, on_shutdown=shutdown
            )

        # partition 0: m2 failed and a later success truncated it; m9 failed last and stays
        assert await client.log_range(kafka_server, topic, 0) == (9, 10)
        assert await client.log_range(kafka_server, topic, 1) == (5, 5)  # m2 failed, m3 was ok

    async def coordinator_of(self, server: Server, group: str) -> int:
        """The id of the broker that coordinates ``group`` now, asked through the backend's
        own client (each backend's test class provides it)."""
        raise NotImplementedError

    async def test_a_group_created_between_two_calls_caps_the_second(
        self, client: KafkaClient, kafka_server: Server, adapter: Any
    ) -> None:
        """The adapter reads the groups it saw on the previous call while it lists them again;
        a group the listing adds is read before anything is truncated."""
        topic = unique("newgroup")
        await client.produce(kafka_server, topic, [None] * 4)
        await client.commit(kafka_server, unique("billing"), topic, 4)
        async with consuming(client, kafka_server, topic, 4) as running:
            first = await adapter.delete(running.messages[1])
            late = unique("late")
            await client.commit(kafka_server, late, topic, 2)
            capped = await adapter.delete(running.messages[3])
            assert await client.log_range(kafka_server, topic) == (2, 4)
            await client.commit(kafka_server, late, topic, 4)
            caught_up = await adapter.delete(running.messages[3])

        assert (first.outcome, first.removed) == (Outcome.DELETED, 2)
        assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 0)
        assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 2)
        assert await client.log_range(kafka_server, topic) == (4, 4)

    async def test_a_group_whose_coordinator_stopped_is_read_from_its_new_coordinator(
        self, client: KafkaClient, kafka_cluster: Server
    ) -> None:
        """The adapter remembers each group's coordinator between calls; when that broker
        stops, it finds the broker that took over and reads the group's latest commit there
        (never taking the unreachable group for one that committed nothing)."""
        topic, group = unique("moved"), unique("billing")
        await client.create_topic(kafka_cluster, topic, assignment=[[1, 2, 3]])
        await client.produce(kafka_cluster, topic, [None] * 4)
        await client.commit(kafka_cluster, group, topic, 1)
        adapter = client.adapter()
        try:
            async with consuming(client, kafka_cluster, topic, 4) as running:
                first = await adapter.delete(running.messages[3])
            # FastStream's consumer has stopped (see KafkaHarness.stop).
            coordinator = await self.coordinator_of(kafka_cluster, group)
            await asyncio.to_thread(kafka_cluster.node(coordinator).stop)
            try:
                await client.commit(kafka_cluster, group, topic, 2)  # to the new coordinator
                moved = await adapter.delete(running.messages[3])
                assert await client.log_range(kafka_cluster, topic) == (2, 4)
            finally:
                await asyncio.to_thread(kafka_cluster.node(coordinator).start)
            await client.commit(kafka_cluster, group, topic, 4)
            caught_up = await adapter.delete(running.messages[3])
        finally:
            await adapter.aclose()

        assert (first.outcome, first.removed) == (Outcome.DEFERRED, 1)
        assert (moved.outcome, moved.removed) == (Outcome.DEFERRED, 1)
        assert (caught_up.outcome, caught_up.removed) == (Outcome.DELETED, 2)
        assert await client.log_range(kafka_cluster, topic) == (4, 4)

    async def test_concurrent_calls_are_each_capped_by_the_groups_on_their_own_partitions(
        self, client: KafkaClient, kafka_server: Server, adapter: Any
    ) -> None:
        """Calls in flight together share one read of the groups (of all their partitions);
        each is capped by the commits on its own partitions."""
        first, second, group = unique("concurrent"), unique("concurrent"), unique("billing")
        for topic, key, committed in ((first, b"a", 1), (second, b"b", 2)):
            await client.produce(kafka_server, topic, [key] * 4)
            await client.commit(kafka_server, group, topic, committed)
        async with consuming(client, kafka_server, [first, second], 8) as running:
            last = {
                client.records_of(m)[0][2]: m
                for m in running.messages
                if client.records_of(m)[0][1] == 3
            }
            capped = await asyncio.gather(adapter.delete(last[b"a"]), adapter.delete(last[b"b"]))

        assert [(r.outcome, r.removed) for r in capped] == [
            (Outcome.DEFERRED, 1),
            (Outcome.DEFERRED, 2),
        ]
        assert await client.log_range(kafka_server, first) == (1, 4)
        assert await client.log_range(kafka_server, second) == (2, 4)

    async def test_the_groups_are_read_on_a_partition_the_previous_call_did_not_touch(
        self, client: KafkaClient, kafka_server: Server, adapter: Any
    ) -> None:
        """The offsets read while the groups are listed are those of the partitions the
        previous call asked for; a call on others reads theirs before truncating."""
        first, second, group = unique("touched"), unique("untouched"), unique("billing")
        for topic, key, committed in ((first, b"a", 4), (second, b"b", 1)):
            await client.produce(kafka_server, topic, [key] * 4)
            await client.commit(kafka_server, group, topic, committed)
        async with consuming(client, kafka_server, [first, second], 8) as running:
            last = {
                client.records_of(m)[0][2]: m
                for m in running.messages
                if client.records_of(m)[0][1] == 3
            }
            deleted = await adapter.delete(last[b"a"])
            capped = await adapter.delete(last[b"b"])

        assert (deleted.outcome, deleted.removed) == (Outcome.DELETED, 4)
        assert (capped.outcome, capped.removed) == (Outcome.DEFERRED, 1)
        assert await client.log_range(kafka_server, second) == (1, 4)

    async def test_each_call_after_the_groups_listing_sends_one_request_per_partition_leader(
        self, client: KafkaClient, kafka_cluster: Server, adapter: Any
    ) -> None:
        """From the second call on, the Metadata sent with the groups' listing gives the
        partition leaders (aiokafka), where the first call looked them up itself."""
        topic = unique("leaders")
        await client.create_topic(kafka_cluster, topic, assignment=[[1, 2], [2, 3], [3, 1]])
        for partition in range(3):
            await client.produce(kafka_cluster, topic, [None] * 3, partition=partition)
        async with consuming(client, kafka_cluster, topic, 9) as running:
            by_offset: dict[int, list[Any]] = {}
            for message in running.messages:
                by_offset.setdefault(client.records_of(message)[0][1], []).append(message)
            first = await adapter.delete_many(by_offset[0])
            second = await adapter.delete_many(by_offset[1])

        assert all((r.outcome, r.removed) == (Outcome.DELETED, 1) for r in first + second)
        for partition in range(3):
            assert await client.log_range(kafka_cluster, topic, partition) == (2, 3)
            assert deletion_requests(kafka_cluster, Partition(topic, partition)) == 2
