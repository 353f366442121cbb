"""Kafka through aiokafka (`faststream.kafka`): prefix truncation or tombstones, of consumed
messages and of [`KafkaOffset`][msgdel.address.KafkaOffset] addresses.

For a message, the adapter reads the connection settings (bootstrap servers and security) of
the consumer FastStream bound to it, opens one admin client (and, for tombstones, one producer)
per cluster and event loop, and reuses them across calls until
[`KafkaAdapter.aclose`][msgdel.adapters.kafka.KafkaAdapter.aclose]. For addresses,
[`msgdel.delete_at`][msgdel.delete_at] connects to a `kafka://host:port[,host:port...]` URL
for the call, or uses the `AIOKafkaAdminClient` it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import struct
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

try:
    import aiokafka
    from aiokafka import TopicPartition
    from aiokafka import errors as kafka_errors
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import (
        ConfigResource,
        ConfigResourceType,
    )
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("kafka") from exc

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

__all__ = ["KafkaAdapter", "Truncation", "url_settings"]

DELETE_RECORDS_VERSION = (0, 11)
"""First aiokafka release whose admin client has `delete_records`."""

_COORDINATOR_MOVED = (
    kafka_errors.GroupLoadInProgressError,  # COORDINATOR_LOAD_IN_PROGRESS
    kafka_errors.GroupCoordinatorNotAvailableError,  # COORDINATOR_NOT_AVAILABLE
    kafka_errors.NotCoordinatorForGroupError,  # NOT_COORDINATOR
)
"""Answers after which a group's coordinator is looked up again."""
_UNREACHABLE = (
    kafka_errors.NodeNotReadyError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.RequestTimedOutError,
    asyncio.TimeoutError,
    OSError,
)

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


@functools.cache
def aiokafka_version() -> tuple[int, ...]:
    """The installed aiokafka's (major, minor), read once."""
    return tuple(int(p) for p in aiokafka.__version__.split(".")[:2] if p.isdigit())


def connection_settings(consumer: Any) -> dict[str, Any]:
    """The bootstrap servers and security settings of an `AIOKafkaConsumer` (or of an
    `AIOKafkaAdminClient`: both hold an `AIOKafkaClient`)."""
    client = consumer._client
    settings = {"bootstrap_servers": client._bootstrap_servers}
    for name in _SETTINGS:
        value = getattr(client, f"_{name}", None)
        if value is not None:
            settings[name] = value
    return settings


def url_settings(url: str) -> dict[str, Any]:
    """aiokafka's connection settings for a `kafka://` URL (see `KafkaUrl`); the `SSL`
    protocols use the system's CA certificates. A malformed URL raises `ValueError` naming
    what is wrong, never its password."""
    parsed = KafkaUrl.parse(url)
    settings: dict[str, Any] = {
        "bootstrap_servers": list(parsed.servers),
        "security_protocol": parsed.protocol,
    }
    if parsed.username is not None:
        settings.update(
            sasl_mechanism=parsed.mechanism,
            sasl_plain_username=parsed.username,
            sasl_plain_password=parsed.password,
        )
    if parsed.protocol.endswith("SSL"):
        from aiokafka.helpers import create_ssl_context

        settings["ssl_context"] = create_ssl_context()
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
    """A msgdel error for an aiokafka exception raised while `doing`."""
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


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _compact_string(text: str) -> bytes:
    raw = text.encode()
    return _uvarint(len(raw) + 1) + raw


def _uvarint_at(data: bytes, at: int) -> tuple[int, int]:
    """The unsigned varint at `data[at]` and the index after it."""
    byte = data[at]
    if byte < 0x80:  # the usual case: one byte
        return byte, at + 1
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _after_tags(data: bytes, at: int) -> int:
    """The index after the tagged fields at `data[at]` (skipped: none is read)."""
    if not data[at]:  # the usual case: none
        return at + 1
    count, at = _uvarint_at(data, at)
    for _ in range(count):
        _, at = _uvarint_at(data, at)  # the tag
        size, at = _uvarint_at(data, at)
        at += size
    return at


def _compact_string_at(data: bytes, at: int) -> tuple[str | None, int]:
    """The compact nullable string at `data[at]` and the index after it."""
    size = data[at]
    if size < 0x80:
        at += 1
    else:
        size, at = _uvarint_at(data, at)
    if not size:
        return None, at
    end = at + size - 1
    return data[at:end].decode(), end


_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_PARTITION = struct.Struct(">iqi")  # partition_index, committed_offset, committed_leader_epoch


def _decode_offset_fetch_v8(data: bytes) -> tuple[int, list[Any], dict[int, bytes]]:
    """An OffsetFetch v8 response's fields (throttle, groups, tags), shaped as aiokafka's
    generic codec shapes them; tagged fields are skipped (Kafka sends none here).

    Written for speed, as one function over indexes: a call reads every group the cluster
    lists, on each of its partitions.
    """
    partition_at = _PARTITION.unpack_from
    int16_at = _INT16.unpack_from
    (throttle,) = _INT32.unpack_from(data, 0)
    groups: list[Any] = []
    count, at = _uvarint_at(data, 4)
    for _ in range(count - 1):
        group, at = _compact_string_at(data, at)
        topics: list[Any] = []
        count, at = _uvarint_at(data, at)
        for _ in range(count - 1):
            name, at = _compact_string_at(data, at)
            partitions: list[Any] = []
            count, at = _uvarint_at(data, at)
            for _ in range(count - 1):
                index, offset, epoch = partition_at(data, at)
                if data[at + 16] == 1:  # the metadata, as a rule empty
                    metadata: str | None = ""
                    at += 17
                else:
                    metadata, at = _compact_string_at(data, at + 16)
                (code,) = int16_at(data, at)
                at = _after_tags(data, at + 2) if data[at + 2] else at + 3  # inline: no tags
                partitions.append((index, offset, epoch, metadata, code, {}))
            at = _after_tags(data, at)
            topics.append((name, partitions, {}))
        (code,) = int16_at(data, at)
        at = _after_tags(data, at + 2)
        groups.append((group, topics, code, {}))
    return throttle, groups, {}


def _multi_group_offset_fetch() -> Any:
    """The `Request` of an OffsetFetch v8 (KIP-709: many groups in one request, Kafka 3.0+),
    built on aiokafka's protocol classes; `None` where aiokafka has no request builders
    (before 0.13), which then sends one request per group.

    The schemas say what goes on the wire; `encode` and `decode` are written out by hand
    (aiokafka's generic codec spent milliseconds per call on a few hundred groups): the
    topics block, the same for every group, is encoded once.
    """
    try:
        from aiokafka.protocol.api import Request, RequestStruct, Response
        from aiokafka.protocol.types import (
            Boolean,
            CompactArray,
            CompactString,
            Int16,
            Int32,
            Int64,
            Schema,
            TaggedFields,
        )
    except ImportError:  # pragma: no cover - aiokafka < 0.13
        return None
    if not hasattr(Request, "prepare"):  # pragma: no cover - aiokafka < 0.13
        return None

    class OffsetFetchResponseV8(Response):  # type: ignore[misc]
        API_KEY = 9
        API_VERSION = 8
        SCHEMA = Schema(
            ("throttle_time_ms", Int32),
            ("groups", CompactArray(
                ("group_id", CompactString("utf-8")),
                ("topics", CompactArray(
                    ("name", CompactString("utf-8")),
                    ("partitions", CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    )),
                    ("tags", TaggedFields),
                )),
                ("error_code", Int16),
                ("tags", TaggedFields),
            )),
            ("tags", TaggedFields),
        )  # fmt: skip

        @classmethod
        def decode(cls, data: Any) -> Any:
            return cls(*_decode_offset_fetch_v8(data if isinstance(data, bytes) else data.read()))

    class OffsetFetchRequestV8(RequestStruct):  # type: ignore[misc]
        FLEXIBLE_VERSION = True
        API_KEY = 9
        API_VERSION = 8
        RESPONSE_TYPE = OffsetFetchResponseV8
        SCHEMA = Schema(
            ("groups", CompactArray(
                ("group_id", CompactString("utf-8")),
                ("topics", CompactArray(
                    ("name", CompactString("utf-8")),
                    ("partition_indexes", CompactArray(Int32)),
                    ("tags", TaggedFields),
                )),
                ("tags", TaggedFields),
            )),
            ("require_stable", Boolean),
            ("tags", TaggedFields),
        )  # fmt: skip

        def encode(self) -> bytes:
            groups = self.groups
            topics = groups[0][1] if groups else []
            block = _uvarint(len(topics) + 1) + b"".join(
                _compact_string(name)
                + _uvarint(len(parts) + 1)
                + b"".join(_INT32.pack(p) for p in parts)
                + b"\x00"  # no tagged fields
                for name, parts, _ in topics
            )
            body = b"".join(_compact_string(group) + block + b"\x00" for group, _, _ in groups)
            return _uvarint(len(groups) + 1) + body + b"\x00\x00"  # require_stable false, tags

    class MultiGroupOffsetFetch(Request[OffsetFetchRequestV8]):  # type: ignore[misc]
        """OffsetFetch v8 of the same partitions for each of `groups`."""

        API_KEY = 9

        def __init__(self, groups: Sequence[str], tps: Sequence[TP]) -> None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in tps:
                by_topic.setdefault(topic, []).append(partition)
            no_tags: dict[int, bytes] = {}
            topics = [(topic, parts, no_tags) for topic, parts in by_topic.items()]
            self.groups = [(group, topics, no_tags) for group in groups]

        def build(self, request_struct_class: Any) -> Any:
            return request_struct_class(self.groups, False, {})

    return MultiGroupOffsetFetch


MultiGroupOffsetFetch = _multi_group_offset_fetch()


def _leaders_of(topics: Sequence[Any]) -> dict[TP, int]:
    """Each partition's leader (-1: none right now) in a Metadata answer's topics."""
    return {
        (str(t["topic"]), int(p["partition"])): int(p["leader"])
        for t in topics
        if not t["error_code"]
        for p in t["partitions"]
    }


async def _started(start: Awaitable[Any], close: Callable[[], Awaitable[Any]]) -> None:
    """Await a client's `start`; close the client when it fails or is cancelled (no leak)."""
    try:
        await start
    except BaseException:
        with contextlib.suppress(Exception):
            await close()
        raise


class _Connection:
    """One admin client (and lazily a producer and an offsets reader) per cluster and loop.

    With `admin` (a caller's started client) it borrows that one and never closes it."""

    def __init__(
        self, settings: dict[str, Any], loop: asyncio.AbstractEventLoop, admin: Any = None
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.admin: Any = admin
        self.owns_admin = admin is None
        self.producer: Any = None
        self.offsets: Any = None
        self.coordinators: dict[str, int] = {}
        """Each consumer group's coordinator (a broker id), as last found."""
        self.group_reads = GroupReads()
        self.topics: set[str] = set()
        """The topics of the latest DeleteRecords (whose leaders the group listing reads)."""
        self.leaders: dict[TP, int] = {}
        self.leaders_at = float("-inf")
        """The event-loop time at which `leaders` was asked for."""
        self.single_group_nodes: set[int] = set()
        """Brokers that answered that they have no OffsetFetch v8 (Kafka before 3.0)."""
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
        """Close what this connection opened (a borrowed admin client stays open)."""
        admin, producer, self.producer = self.admin, self.producer, None
        offsets, self.offsets = self.offsets, None
        if self.owns_admin:
            self.admin = None
        if offsets is not None:
            await offsets.stop()
        if producer is not None:
            await producer.stop()
        if admin is not None and self.owns_admin:
            await admin.close()


class _AiokafkaBackend:
    """The adapter's I/O through one cluster connection, for one consumer's group (or none,
    for addresses): see `Backend` and `AddressBackend`."""

    def __init__(self, connection: _Connection, group_id: str | None) -> None:
        self.connection = connection
        self.group_id = group_id

    async def log_starts(self, tps: Sequence[TP]) -> dict[TP, int]:
        try:
            reader = await self.connection.get_offsets_reader()
            got = await reader.beginning_offsets([TopicPartition(t, p) for t, p in tps])
        except Exception as exc:
            raise translate(exc, "read the log start offsets") from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in got.items()}

    async def log_ends(self, tps: Sequence[TP]) -> dict[TP, int]:
        try:
            reader = await self.connection.get_offsets_reader()
            got = await reader.end_offsets([TopicPartition(t, p) for t, p in tps])
        except Exception as exc:
            raise translate(exc, "read the high watermarks") from exc
        return {(tp.topic, tp.partition): int(offset) for tp, offset in got.items()}

    async def partitions(self, topics: Sequence[str]) -> dict[str, frozenset[int] | None]:
        """One Metadata request that does not create the topics it asks for."""
        from aiokafka.protocol.metadata import MetadataRequest

        try:
            admin = await self.connection.get_admin()
            client = admin._client
            response = await client.send(client.get_random_node(), MetadataRequest(topics, False))
            found: dict[str, frozenset[int] | None] = {}
            for topic in response.to_object()["topics"]:
                name, code = str(topic["topic"]), topic["error_code"]
                if code == kafka_errors.UnknownTopicOrPartitionError.errno:
                    found[name] = None
                elif code:
                    raise kafka_errors.for_code(code)(f"Metadata of topic {name!r}")
                else:
                    found[name] = frozenset(int(p["partition"]) for p in topic["partitions"])
        except Exception as exc:
            raise translate(exc, "read the topics' partitions") from exc
        return found

    async def delete_records(
        self, points: dict[TP, int], since: float
    ) -> dict[TP, int | MsgdelError]:
        self.connection.topics = {topic for topic, _ in points}
        try:
            admin = await self.connection.get_admin()
            leaders = await self._leaders(admin, points, since)
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
        if any(isinstance(answer, MsgdelError) for answer in answers.values()):
            self.connection.leaders_at = float("-inf")  # a retry looks the leaders up again
        return answers

    async def _leaders(self, admin: Any, points: dict[TP, int], since: float) -> dict[TP, int]:
        """Each partition's leader: none needed for a single partition, those of the Metadata
        the group listing fetched when it came after `since` (the call's start) and knows
        them all, else one Metadata request."""
        if len(points) == 1:
            return dict.fromkeys(points, 0)  # one leader, whichever: the client looks it up
        known = self.connection.leaders
        if self.connection.leaders_at >= since and all(known.get(tp, -1) >= 0 for tp in points):
            return known
        topics = sorted({topic for topic, _ in points})
        return _leaders_of(await admin.describe_topics(topics))

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

    @property
    def group_reads(self) -> GroupReads:
        return self.connection.group_reads

    async def list_groups(self) -> list[str]:
        """ListGroups to every broker of the client's metadata, all in flight at once, beside
        a Metadata request that tells whether a broker joined since (one that did is asked
        too, after a metadata refresh) and, for the DeleteRecords that follows, the leaders
        of the topics the latest deletion was on."""
        from aiokafka.protocol.admin import ListGroupsRequest
        from aiokafka.protocol.metadata import MetadataRequest

        try:
            admin = await self.connection.get_admin()
            client = admin._client
            asked = {int(b.nodeId) for b in client.cluster.brokers() if isinstance(b.nodeId, int)}
            if not asked:
                return [str(g[0]) for g in await admin.list_consumer_groups()]

            async def listed(node: int) -> list[str]:
                response = await client.send(node, ListGroupsRequest())
                if response.error_code:
                    raise kafka_errors.for_code(response.error_code)(
                        f"ListGroups failed on broker {node}"
                    )
                return [str(g[0]) for g in response.groups]

            topics = sorted(self.connection.topics)
            began = asyncio.get_running_loop().time()
            metadata, *answers = await asyncio.gather(
                client.send(client.get_random_node(), MetadataRequest(topics, False)),
                *(listed(node) for node in asked),
            )
            described = metadata.to_object()
            self.connection.leaders = _leaders_of(described["topics"])
            self.connection.leaders_at = began
            joined = {int(b["node_id"]) for b in described["brokers"]} - asked
            if joined:
                await client.force_metadata_update()
                answers += await asyncio.gather(*(listed(node) for node in joined))
        except Exception as exc:
            raise translate(exc, "list the consumer groups") from exc
        return [group for answer in answers for group in answer]

    async def committed(self, groups: Sequence[str], tps: Sequence[TP]) -> dict[str, dict[TP, int]]:
        """One OffsetFetch per coordinator for all its groups (v8; one per group where the
        broker or aiokafka lacks it), all in flight at once. Coordinators are cached; an
        answer saying the coordinator moved, or one that cannot be reached, drops the cached
        one, and the retry finds it again."""
        coordinators = self.connection.coordinators
        try:
            admin = await self.connection.get_admin()
            missing = [g for g in groups if g not in coordinators]
            if missing:
                found = await asyncio.gather(*(admin.find_coordinator(g) for g in missing))
                coordinators.update(zip(missing, (int(node) for node in found)))
        except Exception as exc:
            raise translate(exc, "find the consumer groups' coordinators") from exc
        by_node: dict[int, list[str]] = {}
        for group in groups:
            by_node.setdefault(coordinators[group], []).append(group)
        answers: list[dict[str, dict[TP, int]] | BaseException]
        if len(by_node) == 1:  # awaited here: a task would cost a turn of the loop
            ((node, among),) = by_node.items()
            try:
                answers = [await self._committed_on(admin, node, among, tps)]
            except Exception as exc:
                answers = [exc]
        else:
            answers = await asyncio.gather(
                *(self._committed_on(admin, node, among, tps) for node, among in by_node.items()),
                return_exceptions=True,
            )
        offsets: dict[str, dict[TP, int]] = {}
        for (node, among), answer in zip(by_node.items(), answers):
            if isinstance(answer, BaseException):
                if isinstance(answer, _UNREACHABLE + _COORDINATOR_MOVED):
                    for group in among:
                        if coordinators.get(group) == node:
                            del coordinators[group]
                if not isinstance(answer, Exception):
                    raise answer
                raise translate(answer, "read the consumer groups' committed offsets") from answer
            offsets.update(answer)
        return offsets

    async def _committed_on(
        self, admin: Any, node: int, groups: Sequence[str], tps: Sequence[TP]
    ) -> dict[str, dict[TP, int]]:
        """The offsets `groups` committed, from their coordinator `node`: every requested
        partition answered without error, or an aiokafka error is raised."""
        answers: list[tuple[str, int, dict[TP, int]]] = []  # (group, error code, offsets)
        if MultiGroupOffsetFetch is not None and node not in self.connection.single_group_nodes:
            try:
                response = await admin._client.send(node, MultiGroupOffsetFetch(groups, tps))
            except (NotImplementedError, kafka_errors.IncompatibleBrokerVersion):
                self.connection.single_group_nodes.add(node)  # Kafka < 3.0: no OffsetFetch v8
            else:
                for group, topics, error, _ in response.groups:
                    offsets: dict[TP, int] = {}
                    for topic, partitions, _ in topics:
                        for partition, offset, _, _, code, _ in partitions:
                            if code:
                                raise kafka_errors.for_code(code)(
                                    f"OffsetFetch of group {group!r} on {topic}[{partition}]"
                                )
                            offsets[topic, partition] = offset
                    answers.append((str(group), error, offsets))
        if not answers:
            wanted = [TopicPartition(t, p) for t, p in tps]
            for group in groups:
                # aiokafka drops a group-level error (NOT_COORDINATOR, ...) and answers {}:
                # the completeness check below turns that into a retry.
                got = await admin.list_consumer_group_offsets(group, node, partitions=wanted)
                offsets = {(tp.topic, tp.partition): meta.offset for tp, meta in got.items()}
                answers.append((group, 0, offsets))
        committed: dict[str, dict[TP, int]] = {}
        asked = set(tps)
        for group, error, offsets in answers:
            if error == kafka_errors.GroupIdNotFound.errno:
                committed[group] = {}  # no such group (any more): it committed nothing
                continue
            if error:
                raise kafka_errors.for_code(error)(f"OffsetFetch of group {group!r}")
            if not asked <= offsets.keys():
                raise kafka_errors.NotCoordinatorForGroupError(
                    f"broker {node} answered the OffsetFetch of group {group!r} without "
                    "every partition asked for"
                )
            committed[group] = {tp: offset for tp, offset in offsets.items() if offset >= 0}
        if not set(groups) <= committed.keys():
            raise kafka_errors.NotCoordinatorForGroupError(
                f"broker {node} did not answer the OffsetFetch of every group asked for"
            )
        return committed

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
    """Deletes `faststream.kafka` messages (`KafkaMessage`, `KafkaAckableMessage`) and
    [`KafkaOffset`][msgdel.address.KafkaOffset] addresses.

    `strategy="truncate"` (default, semantics PREFIX): DeleteRecords up to the message's
    offset + 1 on its partition leader, never further. `strategy="tombstone"` (semantics
    TOMBSTONE): a null value under the message's key, on its partition. By default truncation
    is capped at the lowest offset other consumer groups committed (outcome DEFERRED; for an
    address every group counts); `protect_groups=False` truncates regardless.

    Addresses ([`msgdel.delete_at`][msgdel.delete_at], truncate only): `connect(url)` opens an
    `AIOKafkaAdminClient` for a `kafka://` URL (see `url_settings`), and `delete_at` and
    `preview` take that, or a started `AIOKafkaAdminClient` of the caller's, which is left
    open (the offsets reader opened beside it is closed by `aclose`).
    """

    broker = "kafka"
    by_address = True
    read_turns = 4
    """The group read has its ListGroups, Metadata and OffsetFetch on the wire within three
    turns of the event loop (four before Python 3.12, whose `wait_for` adds a task)."""

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
        self._by_admin: weakref.WeakKeyDictionary[Any, _Connection] = weakref.WeakKeyDictionary()
        """The connection of each admin client `delete_at` was given."""

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
        _check_version()
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
        group_id = getattr(consumer, "_group_id", None)
        backend = self._backends[consumer] = _AiokafkaBackend(connection, group_id)
        return backend

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[AIOKafkaAdminClient]:
        """A started `AIOKafkaAdminClient` for a `kafka://` URL, closed on exit with what the
        deletions opened beside it. A malformed URL raises `ValueError` at once; a cluster
        that cannot be reached within the adapter's `timeout` raises
        `DeletionFailed(retryable=True)`. No error text holds the URL's password."""
        return self._connected(url_settings(url), redact(url))

    @contextlib.asynccontextmanager
    async def _connected(self, settings: dict[str, Any], shown: str) -> AsyncIterator[Any]:
        connection = _Connection(settings, asyncio.get_running_loop())
        try:
            admin = await asyncio.wait_for(connection.get_admin(), self.timeout)
        except Exception as exc:
            await connection.close()
            raise unreachable(shown, self.timeout, exc) from exc
        self._by_admin[admin] = connection
        try:
            yield admin
        finally:
            self._by_admin.pop(admin, None)
            await connection.close()

    def address_backend(self, connection: Any) -> AddressBackend:
        """The backend of an `AIOKafkaAdminClient` (from `connect`, or the caller's, started),
        for no consumer group: every group's commits count as another group's."""
        if not isinstance(connection, AIOKafkaAdminClient):
            raise UnsupportedDeletion(
                f"{type(self).__name__} deletes addresses on an aiokafka.admin."
                "AIOKafkaAdminClient (what connect('kafka://host:port') gives) or a kafka:// "
                f"URL, not a {type(connection).__module__}.{type(connection).__qualname__}; "
                "nothing was sent"
            )
        if not getattr(connection, "_started", False) or getattr(connection, "_closed", False):
            raise UnsupportedDeletion(
                "the AIOKafkaAdminClient is not started (or already closed): await "
                "admin.start() before passing it; nothing was sent"
            )
        _check_version()
        loop = asyncio.get_running_loop()
        found = self._by_admin.get(connection)
        if found is None or found.loop is not loop:
            self._drop_closed_loops()
            settings = connection_settings(connection)
            found = self._by_admin[connection] = _Connection(settings, loop, connection)
        return _AiokafkaBackend(found, None)

    def _drop_closed_loops(self) -> None:
        for key, connection in list(self._connections.items()):
            if connection.loop.is_closed():
                del self._connections[key]
        for admin, connection in list(self._by_admin.items()):
            if connection.loop.is_closed():
                del self._by_admin[admin]

    async def aclose(self) -> None:
        """Close the admin clients and producers this adapter opened on the running loop (a
        caller's admin client stays open)."""
        loop = asyncio.get_running_loop()
        for key, connection in list(self._connections.items()):
            if connection.loop is loop:
                await connection.close()
                del self._connections[key]
        for admin, connection in list(self._by_admin.items()):
            if connection.loop is loop and not connection.owns_admin:
                await connection.close()
                del self._by_admin[admin]
        self._drop_closed_loops()


def _check_version() -> None:
    if aiokafka_version() < DELETE_RECORDS_VERSION:
        raise UnsupportedDeletion(
            f"deleting Kafka records needs aiokafka >= 0.11 (DeleteRecords); this is "
            f"aiokafka {aiokafka.__version__}: upgrade aiokafka"
        )
