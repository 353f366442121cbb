"""Kafka through aiokafka (``faststream.kafka``): prefix truncation or tombstones.

The adapter reads the connection settings (bootstrap servers and security) of the consumer
FastStream bound to the message, opens one admin client (and, for tombstones, one producer) per
cluster and event loop, and reuses them across calls until :meth:`KafkaAdapter.aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiokafka
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import (
    ConfigResource,
    ConfigResourceType,
)

from msgdel.adapters._kafka_common import (
    DEFAULT_TIMEOUT,
    TP,
    Backend,
    KafkaFamilyAdapter,
    Record,
    Strategy,
    raw_records,
)
from msgdel.compat import is_test_double
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion

DELETE_RECORDS_VERSION = (0, 11)
"""First aiokafka release whose admin client has ``delete_records``."""

_SETTINGS = (
    "security_protocol",
    "ssl_context",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "sasl_kerberos_service_name",
    "sasl_kerberos_domain_name",
    "sasl_oauth_token_provider",
)


def aiokafka_version() -> tuple[int, ...]:
    return tuple(int(p) for p in aiokafka.__version__.split(".")[:2] if p.isdigit())


def connection_settings(consumer: Any) -> dict[str, Any]:
    """The bootstrap servers and security settings of an ``AIOKafkaConsumer``."""
    client = consumer._client
    settings = {"bootstrap_servers": client._bootstrap_servers}
    for name in _SETTINGS:
        value = getattr(client, f"_{name}", None)
        if value is not None:
            settings[name] = value
    return settings


def _settings_key(settings: dict[str, Any]) -> tuple[Any, ...]:
    servers = settings["bootstrap_servers"]
    servers = tuple(servers) if isinstance(servers, (list, tuple)) else (servers,)
    rest = (
        (k, id(v) if k in ("ssl_context", "sasl_oauth_token_provider") else v)
        for k, v in sorted(settings.items())
        if k != "bootstrap_servers"
    )
    return (servers, *rest)


def translate(exc: BaseException, doing: str) -> MsgdelError:
    """A msgdel error for an aiokafka exception raised while ``doing``."""
    if isinstance(exc, kafka_errors.PolicyViolationError):
        return UnsupportedDeletion(
            f"Kafka refused to {doing}: the topic's policy forbids it ({exc}); a topic with "
            "cleanup.policy=compact cannot be truncated: use strategy='tombstone'"
        )
    if isinstance(
        exc,
        (
            kafka_errors.TopicAuthorizationFailedError,
            kafka_errors.GroupAuthorizationFailedError,
            kafka_errors.ClusterAuthorizationFailedError,
        ),
    ):
        return DeletionFailed(
            f"Kafka did not authorize msgdel to {doing} ({exc}): grant the principal DELETE on "
            "the topic (and DESCRIBE on the consumer groups, which protect_groups reads)",
            retryable=False,
            cause=exc,
        )
    timeouts = (asyncio.TimeoutError, OSError, kafka_errors.KafkaTimeoutError)
    retriable = isinstance(exc, timeouts) or bool(getattr(exc, "retriable", False))
    return DeletionFailed(
        f"Kafka could not {doing} ({type(exc).__name__}: {exc})"
        + ("; retrying can succeed" if retriable else ""),
        retryable=retriable,
        cause=exc,
    )


async def _started(start: Awaitable[Any], close: Callable[[], Awaitable[Any]]) -> None:
    """Await a client's ``start``; close the client when it fails or is cancelled (no leak)."""
    try:
        await start
    except BaseException:
        with contextlib.suppress(Exception):
            await close()
        raise


class _Connection:
    """One admin client (and lazily a producer and an offsets reader) per cluster and loop."""

    def __init__(self, settings: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.loop = loop
        self.admin: Any = None
        self.producer: Any = None
        self.offsets: Any = None
        self._lock = asyncio.Lock()

    async def get_admin(self) -> Any:
        async with self._lock:
            if self.admin is None:
                admin = AIOKafkaAdminClient(client_id="msgdel", **self.settings)
                await _started(admin.start(), admin.close)
                self.admin = admin
        return self.admin

    async def get_offsets_reader(self) -> Any:
        """An idle consumer (no group, no subscription) for ListOffsets requests.

        Not the FastStream consumer: Kafka answers requests on one connection in order, so a
        ListOffsets there would wait behind its long-polling fetch (up to fetch_max_wait_ms).
        """
        async with self._lock:
            if self.offsets is None:
                reader = aiokafka.AIOKafkaConsumer(client_id="msgdel", **self.settings)
                await _started(reader.start(), reader.stop)
                self.offsets = reader
        return self.offsets

    async def get_producer(self) -> Any:
        async with self._lock:
            if self.producer is None:
                producer = aiokafka.AIOKafkaProducer(
                    client_id="msgdel", acks="all", **self.settings
                )
                await _started(producer.start(), producer.stop)
                self.producer = producer
        return self.producer

    async def close(self) -> None:
        admin, producer, self.admin, self.producer = self.admin, self.producer, None, None
        offsets, self.offsets = self.offsets, None
        if offsets is not None:
            await offsets.stop()
        if producer is not None:
            await producer.stop()
        if admin is not None:
            await admin.close()


class _AiokafkaBackend:
    """The adapter's I/O through one consumer's cluster connection (see ``Backend``)."""

    def __init__(self, consumer: Any, connection: _Connection) -> None:
        self.consumer = consumer
        self.connection = connection
        self.group_id: str | None = getattr(consumer, "_group_id", None)

    async def log_starts(self, tps: Sequence[TP]) -> dict[TP, int]:

        try:
            reader = await self.connection.get_offsets_reader()
            got = await reader.beginning_offsets([TopicPartition(t, p) for t, p in tps])
        except Exception as exc:
            raise translate(exc, "read the log start offsets") from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in got.items()}

    async def delete_records(self, points: dict[TP, int]) -> dict[TP, int | MsgdelError]:
        try:
            admin = await self.connection.get_admin()
            leaders = await self._leaders(admin, points)
        except Exception as exc:
            raise translate(exc, "find the partition leaders for DeleteRecords") from exc
        answers: dict[TP, int | MsgdelError] = {}
        by_leader: dict[int, dict[TP, int]] = {}
        for tp, point in points.items():
            leader = leaders.get(tp, -1)
            if leader < 0:
                answers[tp] = DeletionFailed(
                    f"Kafka knows no leader for {tp[0]}[{tp[1]}] right now; retrying can succeed",
                    retryable=True,
                )
            else:
                by_leader.setdefault(leader, {})[tp] = point
        for got in await asyncio.gather(*(self._delete_on(admin, p) for p in by_leader.values())):
            answers.update(got)
        return answers

    async def _leaders(self, admin: Any, points: dict[TP, int]) -> dict[TP, int]:
        """Each partition's leader (one metadata request); no lookup for a single partition."""
        if len(points) == 1:
            return dict.fromkeys(points, 0)  # one leader, whichever: the client looks it up
        topics = sorted({topic for topic, _ in points})
        described = await admin.describe_topics(topics)
        return {
            (str(t["topic"]), int(p["partition"])): int(p["leader"])
            for t in described
            for p in t["partitions"]
        }

    async def _delete_on(self, admin: Any, points: dict[TP, int]) -> dict[TP, int | MsgdelError]:
        """One DeleteRecords request (the partitions of one leader).

        aiokafka raises the first partition error of the answer and drops the rest of it; the
        partitions whose log start reached their point were deleted all the same, so the log
        starts are read back to tell them from the ones that failed.
        """
        from aiokafka.admin import RecordsToDelete

        request = {TopicPartition(t, p): RecordsToDelete(point) for (t, p), point in points.items()}
        try:
            got = await admin.delete_records(request)
        except Exception as exc:
            error = translate(exc, "delete records (DeleteRecords)")
            try:
                starts = await self.log_starts(list(points))
            except MsgdelError:
                starts = {}
            return {
                tp: start if (start := starts.get(tp, -1)) >= point else error
                for tp, point in points.items()
            }
        return {(tp.topic, tp.partition): int(low) for tp, low in got.items()}

    async def committed_floor(self, tps: Sequence[TP], exclude: str | None) -> dict[TP, int]:

        try:
            admin = await self.connection.get_admin()
            groups = await self.connection_groups(admin)
            wanted = [TopicPartition(t, p) for t, p in tps]
            floor: dict[TP, int] = {}
            others = [g for g in groups if g != exclude]
            # aiokafka sends one OffsetFetch per group: all of them in flight at once
            answers = await asyncio.gather(
                *(admin.list_consumer_group_offsets(g, partitions=wanted) for g in others)
            )
            for offsets in answers:
                for tp, meta in offsets.items():
                    key = (tp.topic, tp.partition)
                    if meta.offset >= 0:
                        floor[key] = min(floor.get(key, meta.offset), meta.offset)
        except Exception as exc:
            raise translate(exc, "read the consumer groups' committed offsets") from exc
        return floor

    async def connection_groups(self, admin: Any) -> list[str]:
        return [str(g[0]) for g in await admin.list_consumer_groups()]

    async def cleanup_policy(self, topic: str) -> str:

        try:
            admin = await self.connection.get_admin()
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, {"cleanup.policy": None})]
            )
        except Exception as exc:
            raise translate(exc, f"read the cleanup.policy of topic {topic!r}") from exc
        for response in responses:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == "cleanup.policy":
                        return str(entry[1])
        return "delete"

    async def produce_tombstones(self, records: Sequence[Record]) -> list[MsgdelError | None]:
        try:
            producer = await self.connection.get_producer()
        except Exception as exc:
            raise translate(exc, "produce the tombstones") from exc

        async def tombstone(r: Record) -> MsgdelError | None:
            try:
                sent = await producer.send(r.topic, value=None, key=r.key, partition=r.partition)
                await sent
            except Exception as exc:
                return translate(exc, f"produce a tombstone to {r.topic}[{r.partition}]")
            return None

        # Concurrently: the producer batches them per partition; each gets its own answer.
        return list(await asyncio.gather(*(tombstone(r) for r in records)))


class KafkaAdapter(KafkaFamilyAdapter):
    """Deletes ``faststream.kafka`` messages (``KafkaMessage``, ``KafkaAckableMessage``).

    ``strategy="truncate"`` (default, semantics PREFIX): DeleteRecords up to the message's
    offset + 1 on its partition leader, never further. ``strategy="tombstone"`` (semantics
    TOMBSTONE): a null value under the message's key, on its partition. By default truncation
    is capped at the lowest offset other consumer groups committed (outcome DEFERRED);
    ``protect_groups=False`` truncates regardless.
    """

    broker = "kafka"

    def __init__(
        self,
        strategy: Strategy = "truncate",
        *,
        protect_groups: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(strategy, protect_groups=protect_groups, timeout=timeout)
        self._connections: dict[tuple[Any, ...], _Connection] = {}
        self._backends: weakref.WeakKeyDictionary[Any, _AiokafkaBackend] = (
            weakref.WeakKeyDictionary()
        )

    def records(self, message: Any) -> list[Record]:
        return [
            Record(r.topic, int(r.partition), int(r.offset), r.key) for r in raw_records(message)
        ]

    def backend(self, message: Any) -> Backend | None:
        consumer = getattr(message, "consumer", None)
        if consumer is None or is_test_double(consumer):
            return None  # FastStream's in-memory TestKafkaBroker
        if not isinstance(consumer, aiokafka.AIOKafkaConsumer):
            raise NotDeletable(
                f"{type(message).__name__} is bound to {type(consumer).__name__}, not an "
                "AIOKafkaConsumer: msgdel cannot find the cluster it came from"
            )
        if aiokafka_version() < DELETE_RECORDS_VERSION:
            raise UnsupportedDeletion(
                f"deleting Kafka records needs aiokafka >= 0.11 (DeleteRecords); this is "
                f"aiokafka {aiokafka.__version__}: upgrade aiokafka"
            )
        loop = asyncio.get_running_loop()
        cached = self._backends.get(consumer)
        if cached is not None and cached.connection.loop is loop:
            return cached
        self._drop_closed_loops()
        settings = connection_settings(consumer)
        key = (id(loop), *_settings_key(settings))
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = _Connection(settings, loop)
        backend = self._backends[consumer] = _AiokafkaBackend(consumer, connection)
        return backend

    def _drop_closed_loops(self) -> None:
        for key, connection in list(self._connections.items()):
            if connection.loop.is_closed():
                del self._connections[key]

    async def aclose(self) -> None:
        """Close the admin clients and producers this adapter opened on the running loop."""
        loop = asyncio.get_running_loop()
        for key, connection in list(self._connections.items()):
            if connection.loop is loop:
                await connection.close()
                del self._connections[key]
        self._drop_closed_loops()
