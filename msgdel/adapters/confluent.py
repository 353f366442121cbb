"""Kafka through confluent-kafka (`faststream.confluent`): prefix truncation or tombstones, of
consumed messages and of [`KafkaOffset`][msgdel.address.KafkaOffset] addresses.

Same behaviour as [`msgdel.adapters.kafka`][msgdel.adapters.kafka]. The admin requests reuse
FastStream's own `AdminClient` (the one the consumer holds) when it has one, otherwise one built
from the consumer's connection settings; tombstones go through one `Producer` per cluster. Every
blocking confluent-kafka call runs off the event loop (admin futures are awaited, produce and
flush run in a worker thread). For addresses (`adapter=ConfluentAdapter()` in
[`msgdel.delete_at`][msgdel.delete_at]) it uses an `AdminClient` for a `kafka://` URL, or the
caller's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import threading
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

try:
    import confluent_kafka
    from confluent_kafka import KafkaError, KafkaException, TopicCollection, TopicPartition
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ConfigResource,
        OffsetSpec,
        ResourceType,
    )
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("confluent") from exc

from msgdel.adapters._kafka_common import (
    DEFAULT_TIMEOUT,
    TP,
    AddressBackend,
    Backend,
    GroupReads,
    KafkaFamilyAdapter,
    KafkaUrl,
    Record,
    Strategy,
    Truncation,
    raw_records,
    unreachable,
)
from msgdel.compat import is_test_double
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion, redact

__all__ = ["ConfluentAdapter", "Truncation", "url_config"]

DELETE_RECORDS_VERSION = (2, 5)
"""First confluent-kafka release with `AdminClient.delete_records`."""

_CONFIGS_KEPT = 256
"""Consumer configurations whose backend `ConfluentAdapter.backend` remembers."""
_CONNECTION_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "socket.", "client.dns")
_NO_OFFSET = -1001  # confluent-kafka's OFFSET_INVALID: the group committed nothing here
_AUTH_CODES = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.SASL_AUTHENTICATION_FAILED,
}
_STALE_METADATA = {
    KafkaError.FENCED_LEADER_EPOCH,
    KafkaError.UNKNOWN_LEADER_EPOCH,
    KafkaError._NOENT,  # "no leaders found"
    KafkaError._TIMED_OUT,  # waited for a leader whose broker stopped
}
"""Errors after which librdkafka's admin client keeps failing on its cached metadata."""
ATTEMPT_TIMEOUT = 3.0
"""Seconds one admin request may take before it fails and is retried with a new client.

Without it librdkafka waits `socket.timeout.ms` (60 s) for a partition leader whose broker
stopped, long past the call's deadline, instead of looking up the new leader."""
GROUPS_PER_READER = 10
"""Consumer groups whose offsets one admin client reads. librdkafka caches the coordinators of
11 groups per client (a fixed size, not configurable) and evicts the least recently used
beyond: a client reading more groups in turn misses its cache for most of them, and sends a
FindCoordinator before each such OffsetFetch, on every read."""
READERS = 8
"""At most this many admin clients read groups' offsets per cluster (80 groups with cached
coordinators); the groups beyond share the last one."""
T = TypeVar("T")


def confluent_version() -> tuple[int, ...]:
    text = str(confluent_kafka.version())  # the Python client's version, e.g. "2.16.1"
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def connection_config(consumer_config: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap servers and security settings of a consumer's configuration."""
    return {k: v for k, v in consumer_config.items() if k.startswith(_CONNECTION_PREFIXES)}


def url_config(url: str) -> dict[str, Any]:
    """librdkafka's connection settings for a `kafka://` URL (see `KafkaUrl`). A malformed
    URL raises `ValueError` naming what is wrong, never its password."""
    parsed = KafkaUrl.parse(url)
    config: dict[str, Any] = {
        "bootstrap.servers": ",".join(parsed.servers),
        "security.protocol": parsed.protocol.lower(),
        "client.id": "msgdel",
    }
    if parsed.username is not None:
        config.update(
            {
                "sasl.mechanism": parsed.mechanism,
                "sasl.username": parsed.username,
                "sasl.password": parsed.password,
            }
        )
    return config


def _error_code(exc: BaseException) -> Any:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


def translate(exc: BaseException, doing: str) -> MsgdelError:
    """A msgdel error for a confluent-kafka exception raised while `doing`."""
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(error, KafkaError):
        if error.code() == KafkaError.POLICY_VIOLATION:
            return UnsupportedDeletion(
                f"Kafka refused to {doing}: the topic's policy forbids it ({error.str()}); a "
                "topic with cleanup.policy=compact cannot be truncated: use strategy='tombstone'"
            )
        if error.code() in _AUTH_CODES:
            return DeletionFailed(
                f"Kafka did not authorize msgdel to {doing} ({error.str()}): grant the "
                "principal DELETE on the topic (and DESCRIBE on the consumer groups, which "
                "protect_groups reads)",
                retryable=False,
                cause=exc,
            )
        retriable = bool(error.retriable()) or error.code() in (
            KafkaError._TRANSPORT,
            KafkaError._TIMED_OUT,
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError.NOT_LEADER_FOR_PARTITION,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.FENCED_LEADER_EPOCH,  # stale metadata right after a broker restart
            KafkaError.UNKNOWN_LEADER_EPOCH,
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError.NOT_CONTROLLER,
            KafkaError._NOENT,  # "no leaders found": metadata not refreshed after a restart
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,  # a group coordinator just (re)started
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
        )
        return DeletionFailed(
            f"Kafka could not {doing} ({error.name()}: {error.str()})"
            + ("; retrying can succeed" if retriable else ""),
            retryable=retriable,
            cause=exc,
        )
    return DeletionFailed(
        f"Kafka could not {doing} ({type(exc).__name__}: {exc})", retryable=False, cause=exc
    )


def _settled(futures: Sequence[concurrent.futures.Future[Any]]) -> asyncio.Future[None]:
    """An event-loop future that resolves once every one of `futures` (confluent-kafka admin
    futures) is done, woken once: librdkafka resolves them in its own thread, and waking the
    loop for each (`asyncio.wrap_future`) costs a thread hop apiece.

    A caller that stops waiting (deadline) leaves the futures to librdkafka, which resolves
    them itself; they are never cancelled.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    left = len(futures)
    lock = threading.Lock()

    def resolve() -> None:
        if not done.done():
            done.set_result(None)

    def one_done(_: concurrent.futures.Future[Any]) -> None:
        nonlocal left
        with lock:
            left -= 1
            last = left == 0
        if last and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(resolve)

    if not futures:
        done.set_result(None)
    for future in futures:
        future.add_done_callback(one_done)  # runs at once for a future already done
    return done


async def _all(futures: dict[Any, concurrent.futures.Future[Any]]) -> dict[Any, Any]:
    """Await a dict of confluent-kafka admin futures without blocking the loop: every value,
    or the first error in key order once all are done (see `_settled`)."""
    await asyncio.shield(_settled(list(futures.values())))
    return {key: future.result() for key, future in futures.items()}


async def _each(futures: dict[Any, concurrent.futures.Future[Any]]) -> dict[Any, Any]:
    """As `_all`, but every key gets its own value or the exception it failed with."""
    await asyncio.shield(_settled(list(futures.values())))
    return {key: future.exception() or future.result() for key, future in futures.items()}


class _Connection:
    """An admin client (FastStream's own when it has one) and a lazy producer for a cluster.

    A `borrowed` admin client (a caller's, whose settings are unknown: no `config`) is used
    as it is and never renewed."""

    def __init__(self, config: dict[str, Any], admin: Any, *, borrowed: bool = False) -> None:
        self.config = config
        self.admin: Any = admin if borrowed or admin is not None else AdminClient(config)
        self.producer: Any = None
        self.group_reads = GroupReads()
        self.readers: list[Any] = []
        """The admin clients that read consumer groups' offsets (see `reader_of`)."""
        self.reader_of_group: dict[str, int] = {}
        """Each group's reader (an index in `readers`) since its first read."""
        self._lock = threading.Lock()

    def get_producer(self) -> Any:
        with self._lock:
            if self.producer is None:
                self.producer = confluent_kafka.Producer(
                    {**self.config, "acks": "all", "client.id": "msgdel"}
                )
            return self.producer

    def renew_admin_after(self, exc: BaseException) -> None:
        """Replace the admin client when `exc` says its cached metadata is stale.

        After a broker restart librdkafka's admin client keeps sending the old leader epoch
        (FENCED_LEADER_EPOCH) until its next periodic metadata refresh, minutes later; a new
        client fetches fresh metadata, so the retry succeeds.
        """
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(error, KafkaError) and error.code() in _STALE_METADATA:
            self.renew_admin()

    def renew_admin(self) -> None:
        """A new admin client: it fetches fresh metadata (leaders) on its first request."""
        if self.config:
            self.admin = AdminClient({**self.config, "client.id": "msgdel"})

    def reader_of(self, group: str) -> Any:
        """The admin client that reads `group`'s offsets: always the same one, each reading
        at most `GROUPS_PER_READER` groups, so that librdkafka finds every group's
        coordinator in its cache (see `GROUPS_PER_READER`); up to `READERS` clients, the
        last of which reads the groups beyond. A borrowed client (unknown settings) reads
        every group itself."""
        if not self.config:
            return self.admin
        slot = self.reader_of_group.get(group)
        if slot is None:
            load = [0] * len(self.readers)
            for index in self.reader_of_group.values():
                load[index] += 1
            slot = next((i for i, n in enumerate(load) if n < GROUPS_PER_READER), None)
            if slot is None:
                if len(self.readers) < READERS:
                    self.readers.append(AdminClient({**self.config, "client.id": "msgdel"}))
                slot = len(self.readers) - 1
            self.reader_of_group[group] = slot
        return self.readers[slot]

    def forget_groups_except(self, listed: Sequence[str]) -> None:
        """Free the reader places of groups the cluster no longer lists."""
        keep = set(listed)
        for group in [g for g in self.reader_of_group if g not in keep]:
            del self.reader_of_group[group]

    def renew_readers_after(self, exc: BaseException) -> None:
        """New group readers when `exc` says their cached metadata is stale (as
        `renew_admin_after`); each group's coordinator is looked up again."""
        error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
        if isinstance(error, KafkaError) and error.code() in _STALE_METADATA:
            self.readers, self.reader_of_group = [], {}


class _ConfluentBackend:
    """The adapter's I/O through one consumer's cluster (see `Backend`)."""

    def __init__(self, connection: _Connection, group_id: str | None) -> None:
        self.connection = connection
        self.group_id = group_id

    @property
    def admin(self) -> Any:
        return self.connection.admin

    async def log_starts(self, tps: Sequence[TP]) -> dict[TP, int]:
        return await self._offsets(tps, OffsetSpec.earliest(), "log start offset")  # type: ignore[no-untyped-call]

    async def log_ends(self, tps: Sequence[TP]) -> dict[TP, int]:
        return await self._offsets(tps, OffsetSpec.latest(), "high watermark")  # type: ignore[no-untyped-call]

    async def _offsets(self, tps: Sequence[TP], spec: Any, what: str) -> dict[TP, int]:
        request = {TopicPartition(t, p): spec for t, p in tps}
        try:
            got = await _all(self.admin.list_offsets(request, request_timeout=ATTEMPT_TIMEOUT))
        except Exception as exc:
            self.connection.renew_admin_after(exc)
            raise translate(exc, f"read the {what}s") from exc
        offsets = {(tp.topic, tp.partition): int(info.offset) for tp, info in got.items()}
        unknown = [f"{t}[{p}]" for (t, p), offset in offsets.items() if offset < 0]
        if unknown:
            # librdkafka answers OFFSET_INVALID (-1001) when the leader it asked has gone
            # (a broker stopped): a new client looks the leaders up again.
            self.connection.renew_admin()
            raise DeletionFailed(
                f"Kafka reported no {what} for {', '.join(unknown)} (its leader is "
                "moving); retrying can succeed",
                retryable=True,
            )
        return offsets

    async def partitions(self, topics: Sequence[str]) -> dict[str, frozenset[int] | None]:
        """DescribeTopics, which never creates a topic (a metadata request of the admin
        client may: librdkafka allows auto-creation for producer-type clients)."""
        try:
            got = await _each(
                self.admin.describe_topics(
                    TopicCollection(list(topics)), request_timeout=ATTEMPT_TIMEOUT
                )
            )
            found: dict[str, frozenset[int] | None] = {}
            for topic, answer in got.items():
                if not isinstance(answer, BaseException):
                    found[topic] = frozenset(int(p.id) for p in answer.partitions)
                elif _error_code(answer) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    found[topic] = None
                else:
                    raise answer
        except Exception as exc:
            self.connection.renew_admin_after(exc)
            raise translate(exc, "read the topics' partitions") from exc
        return found

    async def delete_records(
        self, points: dict[TP, int], since: float
    ) -> dict[TP, int | MsgdelError]:
        request = [TopicPartition(t, p, point) for (t, p), point in points.items()]
        try:
            # librdkafka sends one request per leader and answers each partition on its own.
            got = await _each(self.admin.delete_records(request, request_timeout=ATTEMPT_TIMEOUT))
        except Exception as exc:
            self.connection.renew_admin_after(exc)
            raise translate(exc, "delete records (DeleteRecords)") from exc
        answers: dict[TP, int | MsgdelError] = {}
        for tp, done in got.items():
            if isinstance(done, BaseException):
                self.connection.renew_admin_after(done)
                where = f"{tp.topic}[{tp.partition}]"
                answers[tp.topic, tp.partition] = translate(done, f"delete records of {where}")
            else:
                answers[tp.topic, tp.partition] = int(done.low_watermark)
        return answers

    @property
    def group_reads(self) -> GroupReads:
        return self.connection.group_reads

    async def list_groups(self) -> list[str]:
        """One ListConsumerGroups (librdkafka asks every broker it knows); a broker that did
        not answer fails the listing (its groups are unknown), and when it stopped, the
        retry asks the brokers of fresh metadata."""
        try:
            listed = await asyncio.wrap_future(
                self.admin.list_consumer_groups(request_timeout=ATTEMPT_TIMEOUT)
            )
            for error in listed.errors or ():
                raise error if isinstance(error, BaseException) else KafkaException(error)
        except Exception as exc:
            self.connection.renew_admin_after(exc)
            raise translate(exc, "list the consumer groups") from exc
        groups = [str(g.group_id) for g in listed.valid or ()]
        self.connection.forget_groups_except(groups)
        return groups

    async def committed(self, groups: Sequence[str], tps: Sequence[TP]) -> dict[str, dict[TP, int]]:
        """One OffsetFetch per group (librdkafka takes one group per request), all in flight
        at once, each group always through the same of the connection's readers, whose
        coordinator caches then hold every group (see `GROUPS_PER_READER`)."""
        from confluent_kafka import ConsumerGroupTopicPartitions

        wanted = [TopicPartition(t, p) for t, p in tps]
        offsets: dict[str, dict[TP, int]] = {}
        try:
            futures = {
                group: self.connection.reader_of(group).list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group, wanted)], request_timeout=ATTEMPT_TIMEOUT
                )[group]
                for group in groups
            }
            answers = await _all(futures)
            for group in groups:
                committed = offsets[group] = {}
                for tp in answers[group].topic_partitions:
                    if tp.error is not None:
                        raise KafkaException(tp.error)
                    if tp.offset >= 0 and tp.offset != _NO_OFFSET:
                        committed[tp.topic, tp.partition] = tp.offset
        except Exception as exc:
            self.connection.renew_readers_after(exc)
            raise translate(exc, "read the consumer groups' committed offsets") from exc
        return offsets

    async def cleanup_policy(self, topic: str) -> str:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        try:
            got = await _all(self.admin.describe_configs([resource]))
        except Exception as exc:
            raise translate(exc, f"read the cleanup.policy of topic {topic!r}") from exc
        entries = next(iter(got.values()))
        entry = entries.get("cleanup.policy")
        return str(entry.value) if entry is not None else "delete"

    async def produce_tombstones(self, records: Sequence[Record]) -> list[MsgdelError | None]:
        return await asyncio.to_thread(self._produce_and_flush, records)

    def _produce_and_flush(self, records: Sequence[Record]) -> list[MsgdelError | None]:
        unacknowledged = DeletionFailed(
            "the tombstone was not acknowledged within 30s; retrying can succeed", retryable=True
        )
        answers: list[MsgdelError | None] = [unacknowledged] * len(records)

        def delivered(index: int, error: KafkaError | None, _message: Any) -> None:
            answers[index] = None
            if error is not None:
                answers[index] = translate(KafkaException(error), "produce a tombstone")

        try:
            producer = self.connection.get_producer()
        except Exception as exc:
            raise translate(exc, "produce the tombstones") from exc
        for index, r in enumerate(records):
            try:
                producer.produce(r.topic, value=None, key=r.key, partition=r.partition,
                                 on_delivery=functools.partial(delivered, index))  # fmt: skip
            except Exception as exc:
                answers[index] = translate(exc, f"produce a tombstone to {r.topic}[{r.partition}]")
        producer.flush(30)
        return answers


class ConfluentAdapter(KafkaFamilyAdapter):
    """Deletes `faststream.confluent` messages, with the same options as `KafkaAdapter`, and
    [`KafkaOffset`][msgdel.address.KafkaOffset] addresses given `adapter=ConfluentAdapter()`.

    `strategy="truncate"` (default, semantics PREFIX): DeleteRecords up to the message's
    offset + 1, never further; `strategy="tombstone"` (TOMBSTONE): a null value under the
    message's key on its partition; `protect_groups` caps truncation at the lowest offset
    other consumer groups committed (outcome DEFERRED; for an address every group counts).

    Addresses (truncate only): `connect(url)` gives a `confluent_kafka.admin.AdminClient` for
    a `kafka://` URL (see `url_config`), and `delete_at` and `preview` take that, or the
    caller's own `AdminClient`.
    """

    broker = "confluent"
    by_address = True

    def __init__(
        self,
        strategy: Strategy = "truncate",
        *,
        protect_groups: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(strategy, protect_groups=protect_groups, timeout=timeout)
        self._connections: dict[tuple[Any, ...], _Connection] = {}
        self._backends: dict[tuple[Any, ...], _ConfluentBackend] = {}
        self._by_config: dict[int, tuple[dict[str, Any], _ConfluentBackend]] = {}
        """The backend of each consumer configuration seen (by identity: FastStream's consumer
        keeps its one `config` dict, and allows no weak reference), which spares each message
        reading the settings again; the dict is held so that its id stays its own."""
        self._by_admin: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()
        """The connection of each admin client `delete_at` was given."""

    def records(self, message: Any) -> list[Record]:
        return [
            Record(str(m.topic()), int(m.partition()), int(m.offset()), m.key())
            for m in raw_records(message)
        ]

    def backend(self, message: Any) -> Backend | None:
        consumer = getattr(message, "consumer", None)
        config = getattr(consumer, "config", None)
        cached = self._by_config.get(id(config))
        if cached is not None and cached[0] is config:
            return cached[1]  # the hot path: a consumer whose messages came before
        if consumer is None or is_test_double(consumer):
            return None  # FastStream's in-memory TestKafkaBroker
        if not isinstance(config, dict) or "bootstrap.servers" not in config:
            raise NotDeletable(
                f"{type(message).__name__} is bound to {type(consumer).__name__}, which has no "
                "confluent-kafka configuration: msgdel cannot find the cluster it came from"
            )
        _check_version()
        settings = connection_config(config)
        key = tuple(sorted((k, str(v)) for k, v in settings.items()))
        connection = self._connections.get(key)
        if connection is None:
            service = getattr(consumer, "admin_client", None)
            admin = getattr(service, "admin_client", None)
            connection = self._connections[key] = _Connection(settings, admin)
        group = config.get("group.id")
        backend_key = (*key, group)
        backend = self._backends.get(backend_key)
        if backend is None or backend.connection is not connection:
            backend = self._backends[backend_key] = _ConfluentBackend(connection, group)
        if len(self._by_config) >= _CONFIGS_KEPT:  # consumers come and go: drop the oldest
            del self._by_config[next(iter(self._by_config))]
        self._by_config[id(config)] = (config, backend)
        return backend

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[Any]:
        """An `AdminClient` for a `kafka://` URL that answered a DescribeCluster within the
        adapter's `timeout` (else `DeletionFailed(retryable=True)`); a malformed URL raises
        `ValueError` at once. No error text holds the URL's password."""
        return self._connected(url_config(url), redact(url))

    @contextlib.asynccontextmanager
    async def _connected(self, config: dict[str, Any], shown: str) -> AsyncIterator[Any]:
        connection = _Connection(config, None)
        admin = connection.admin
        try:
            described = admin.describe_cluster(request_timeout=self.timeout)
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(described)), self.timeout)
        except Exception as exc:
            raise unreachable(shown, self.timeout, exc) from exc
        self._by_admin[admin] = connection
        try:
            yield admin
        finally:
            self._by_admin.pop(admin, None)

    def address_backend(self, connection: Any) -> AddressBackend:
        """The backend of a `confluent_kafka.admin.AdminClient`, for no consumer group: every
        group's commits count as another group's."""
        if not isinstance(connection, AdminClient):
            raise UnsupportedDeletion(
                f"{type(self).__name__} deletes addresses on a confluent_kafka.admin.AdminClient "
                "(what connect('kafka://host:port') gives) or a kafka:// URL, not a "
                f"{type(connection).__module__}.{type(connection).__qualname__}; nothing was sent"
            )
        _check_version()
        found = self._by_admin.get(connection)
        if found is None:
            found = self._by_admin[connection] = _Connection({}, connection, borrowed=True)
        return _ConfluentBackend(found, None)

    async def aclose(self) -> None:
        """Flush the producers this adapter opened and forget its clients."""
        connections, self._connections = list(self._connections.values()), {}
        self._backends, self._by_config = {}, {}
        self._by_admin = weakref.WeakKeyDictionary()
        for connection in connections:
            if connection.producer is not None:
                await asyncio.to_thread(connection.producer.flush, 10)


def _check_version() -> None:
    if confluent_version() < DELETE_RECORDS_VERSION:
        raise UnsupportedDeletion(
            "deleting Kafka records needs confluent-kafka >= 2.5 (AdminClient.delete_records);"
            f" this is confluent-kafka {confluent_kafka.version()}: upgrade confluent-kafka"
        )
