"""Erasure by key (right to erasure): find one person's records and remove them at the broker.

```python
from msgdel.erasure import JetStreamSubject, RedisStreamField, erase

reports = await erase("redis://localhost", [RedisStreamField("orders", "user", "u-42")])
reports = await erase("nats://localhost", [JetStreamSubject("EVENTS", "events.u-42.>")])
```

The caller names where to look and how the person is identified: a target. Nothing read from
a record (its payload, its headers) can widen a target: a record matches only by the field,
subject, key or topic the caller gave. Each broker erases with its own operation:

- [`RedisStreamField`][msgdel.erasure.RedisStreamField]: `XRANGE` pages; per batch of
  matches one `XDELEX … DELREF` (Redis >= 8.2) or one `MULTI` of an `XACK` per consumer group
  and an `XDEL`. Removed now, for every consumer group.
- [`JetStreamSubject`][msgdel.erasure.JetStreamSubject]: a stream purge with the subject as
  filter. Removed now, for every consumer.
- [`KvKey`][msgdel.address.KvKey]: a KV purge of the key (`KV-Operation: PURGE`,
  `Nats-Rollup: sub`). Removed now with its history; one value-less purge marker stays.
- [`ObjectName`][msgdel.erasure.ObjectName]: an object store delete. Removed now.
- [`RetainedTopics`][msgdel.erasure.RetainedTopics]: an empty retained publish per topic that
  retains a message. Removed now.
- [`KafkaKey`][msgdel.erasure.KafkaKey]: a tombstone (null value, same key) to the key's
  partition of a compacted topic. Removed later, by compaction (`gone_by`).

`erase` returns one [`ErasureReport`][msgdel.erasure.ErasureReport] per target, in input order,
and never raises for what a broker did or refused: every outcome, a failure too, is in a report.
A report never holds the personal data: no value, no payload, and the identifying part of a
target (the field value, subject, KV key, object name, topic, Kafka key) only as its
[`fingerprint`][msgdel.erasure.fingerprint], which whoever holds the erasure request can
recompute to match the report to it.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import importlib
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import attrs

from msgdel import _check
from msgdel._names import JETSTREAM_NAME, KAFKA_TOPIC
from msgdel._urls import require_scheme
from msgdel.address import JetStreamSequence, KafkaOffset, KvKey, RedisEntry, RetainedTopic
from msgdel.errors import redact

__all__ = [
    "ErasureOutcome",
    "ErasureReport",
    "ErasureTarget",
    "JetStreamSubject",
    "KafkaKey",
    "ObjectName",
    "Progress",
    "RedisStreamField",
    "RetainedTopics",
    "erase",
    "fingerprint",
]

FINGERPRINT_HEX = 16
"""Hex digits of SHA-256 a fingerprint keeps (64 bits: enough to match a report to a request)."""


def fingerprint(identifier: str | bytes) -> str:
    """`sha256:` and the first 16 hex digits of SHA-256 of `identifier` (UTF-8 for a `str`).

    It is how a report names the identifying part of a target. It is unsalted, so whoever
    holds the request can recompute it; for the same reason it is pseudonymous, not
    anonymous: a guessable identifier (an e-mail address) can be found by trying candidates.
    """
    data = identifier.encode() if isinstance(identifier, str) else bytes(identifier)
    return "sha256:" + hashlib.sha256(data).hexdigest()[:FINGERPRINT_HEX]


def _text(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value:
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str, got "
            f"{'an empty str' if value == '' else type(value).__name__}"
        )  # the value itself is not shown: it may be the personal data


def _identifier(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, (str, bytes)) or not value:
        raise TypeError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty str or bytes, "
            f"got {'an empty one' if value in ('', b'') else type(value).__name__}"
        )


@attrs.frozen
class ErasureTarget:
    """Where one person's records are and how they are identified. Subclasses name their
    broker, their URL schemes, and how a report shows them."""

    broker: ClassVar[str]
    """The broker family, as in [`DeleteResult.broker`][msgdel.DeleteResult.broker]."""
    schemes: ClassVar[tuple[str, ...]]
    """The URL schemes of a connection this target can be erased on."""

    @property
    def label(self) -> str:
        """How a report names the target: its location as given, the identifier fingerprinted."""
        raise NotImplementedError


@attrs.frozen
class RedisStreamField(ErasureTarget):
    """The entries of a Redis stream whose `field` holds exactly `value` (bytes compared).

    `after` resumes a scan: only entries with ids strictly greater are looked at (the
    `resume_from` of an interrupted erasure's report)."""

    broker: ClassVar[str] = "redis"
    schemes: ClassVar[tuple[str, ...]] = RedisEntry.schemes

    stream: str = attrs.field(validator=_text)
    field: str | bytes = attrs.field(validator=_identifier)
    value: str | bytes = attrs.field(validator=_identifier, repr=False)
    after: str | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(
            attrs.validators.matches_re(r"[0-9]{1,20}-[0-9]{1,20}")
        ),
    )

    @property
    def label(self) -> str:
        field = self.field if isinstance(self.field, str) else self.field.decode(errors="replace")
        return f"redis stream {self.stream!r} field {field!r} = {fingerprint(self.value)}"


@attrs.frozen
class JetStreamSubject(ErasureTarget):
    """The messages of a JetStream stream on `subject` (a subject filter: `*` and `>` match
    tokens, so `orders.u-42.>` names every subject under one person's token)."""

    broker: ClassVar[str] = "nats"
    schemes: ClassVar[tuple[str, ...]] = JetStreamSequence.schemes

    stream: str = attrs.field(validator=JETSTREAM_NAME)
    subject: str = attrs.field(validator=_text, repr=False)

    @subject.validator
    def _subject_form(self, attribute: attrs.Attribute[str], value: str) -> None:
        if any(c in value for c in " \t\r\n") or "" in value.split("."):
            raise ValueError("JetStreamSubject.subject must be dot-separated tokens, no spaces")

    @property
    def label(self) -> str:
        return f"jetstream {self.stream!r} subject {fingerprint(self.subject)}"


@attrs.frozen
class ObjectName(ErasureTarget):
    """An object of a NATS object store bucket."""

    broker: ClassVar[str] = "nats"
    schemes: ClassVar[tuple[str, ...]] = JetStreamSubject.schemes

    bucket: str = attrs.field(validator=_text)
    name: str = attrs.field(validator=_text, repr=False)

    @property
    def label(self) -> str:
        return f"object store {self.bucket!r} object {fingerprint(self.name)}"


def _topics(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, Iterable) else value  # type: ignore[return-value]


@attrs.frozen
class RetainedTopics(ErasureTarget):
    """The retained messages of MQTT topics (exact topic names, no wildcards)."""

    broker: ClassVar[str] = "mqtt"
    schemes: ClassVar[tuple[str, ...]] = RetainedTopic.schemes

    topics: tuple[str, ...] = attrs.field(converter=_topics, repr=False)

    @topics.validator
    def _names(self, attribute: attrs.Attribute[tuple[str, ...]], value: object) -> None:
        if not isinstance(value, tuple) or not value:
            raise TypeError("RetainedTopics.topics must be one topic or a non-empty iterable")
        for topic in value:
            RetainedTopic(topic)  # the address's checks: a str, no wildcard

    @property
    def label(self) -> str:
        shown = ", ".join(fingerprint(t) for t in self.topics[:3])
        more = f" and {len(self.topics) - 3} more" if len(self.topics) > 3 else ""
        return f"mqtt retained topics {shown}{more}"


@attrs.frozen
class KafkaKey(ErasureTarget):
    """The records of a Kafka topic with message key `key` (bytes compared; a `str` is
    UTF-8). `truncate=True` opts in, on a topic that is not compacted, to truncating each
    partition up to and including its last record with the key: every earlier record of the
    partition goes too, other people's as well, and the report says which offsets."""

    broker: ClassVar[str] = "kafka"
    schemes: ClassVar[tuple[str, ...]] = KafkaOffset.schemes

    topic: str = attrs.field(validator=KAFKA_TOPIC)
    key: str | bytes = attrs.field(validator=_identifier, repr=False)
    truncate: bool = attrs.field(default=False, kw_only=True)

    @truncate.validator
    def _flag(self, attribute: attrs.Attribute[bool], value: object) -> None:
        _check.flag("KafkaKey.truncate", value)

    @property
    def key_bytes(self) -> bytes:
        return self.key.encode() if isinstance(self.key, str) else bytes(self.key)

    @property
    def label(self) -> str:
        return f"kafka topic {self.topic!r} key {fingerprint(self.key)}"


def _label(target: object) -> str:
    if isinstance(target, KvKey):
        return f"kv bucket {target.bucket!r} key {fingerprint(target.key)}"
    return target.label  # type: ignore[attr-defined, no-any-return]


class ErasureOutcome(enum.Enum):
    """What an erasure did for one target."""

    ERASED = "erased"
    """Every matching record found was removed now (or was gone when it was removed)."""
    MARKED = "marked"
    """Tombstones were written: the records are removed later, by `gone_by` at the latest."""
    NOTHING_FOUND = "nothing_found"
    """No record matched; nothing was removed."""
    NOT_ERASABLE = "not_erasable"
    """The broker cannot erase this target as asked (`reason` says why); nothing was removed."""
    INCOMPLETE = "incomplete"
    """Stopped part way (`reason` says why): `removed` were removed; running it again (from
    `resume_from`, where given) finishes it, as erasing is idempotent."""
    DRY_RUN = "dry_run"
    """Nothing was changed: `matched` is what an erasure would remove."""


@attrs.frozen
class ErasureReport:
    """What an erasure did for one target. It holds no personal data: `target` is the
    target's label (its identifier fingerprinted), and no value or payload is ever kept."""

    broker: str
    target: str
    """The target's label: its location as given, its identifier as a fingerprint."""
    outcome: ErasureOutcome
    matched: int = 0
    """Records found matching the target (in a dry run too)."""
    removed: int = 0
    """Records the broker reports removed by this call."""
    marked: int = 0
    """Records marked for removal (Kafka tombstones), gone by `gone_by`."""
    scanned: int = 0
    """Records looked at to find the matches (Redis, and Kafka with `truncate`); 0 where the
    broker counts matches itself."""
    gone_by: datetime.datetime | None = None
    """For `MARKED`: the time (UTC) by which compaction has removed the records, at the
    latest, given the topic's `max.compaction.lag.ms`; None if the topic sets no bound."""
    reason: str | None = None
    """Why a target is not erasable or incomplete, or what else the operation did (such as
    removing entries other consumer groups still had pending). Never personal data."""
    resume_from: str | None = None
    """Where an interrupted scan can resume (`RedisStreamField(..., after=resume_from)`)."""
    removes: tuple[str, ...] = ()
    """Kafka truncation: the offset ranges removed (`topic[partition]:first-last`)."""

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (`gone_by` as an ISO 8601 string), for an audit log."""
        data = attrs.asdict(self, recurse=False)
        data["outcome"] = self.outcome.value
        data["gone_by"] = self.gone_by.isoformat() if self.gone_by else None
        data["removes"] = list(self.removes)
        return data


@attrs.frozen
class Progress:
    """How far the erasure of one target got: passed to `erase(progress=...)` after every page."""

    index: int
    """The target's place among `erase`'s targets."""
    target: str
    scanned: int
    matched: int
    removed: int


ProgressCallback = Callable[[Progress], None]

_MODULES = {"redis": "_redis", "nats": "_nats", "mqtt": "_mqtt", "kafka": "_kafka"}

Target = ErasureTarget | KvKey


async def erase(
    connection: object,
    targets: Iterable[ErasureTarget | KvKey],
    *,
    dry_run: bool = False,
    page_size: int = 1000,
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
) -> list[ErasureReport]:
    """Erase each target's records at its broker; one report per target, in input order.

    `connection` is a URL of the targets' broker (a client is opened and closed again) or a
    connected client (`redis.asyncio.Redis`, nats-py `Client`, zmqtt `MQTTClient`, or for
    Kafka an `aiokafka` `AIOKafkaAdminClient` whose bootstrap servers are used); every target
    is of that one broker. `dry_run=True` finds and counts the matches and changes nothing
    (outcome `DRY_RUN`). `page_size` bounds how many records a scan holds at once (Redis
    `XRANGE … COUNT`), `batch_size` how many matches one deleting round trip removes.
    `progress` is called after every page of a scan.

    Every argument is checked before anything is sent (`TypeError`/`ValueError`); after
    that, nothing is raised but cancellation: a broker that refuses or cannot be reached
    gives its targets `INCOMPLETE` or `NOT_ERASABLE` reports that say so.
    """
    items = _targets(targets)
    _check.flag("dry_run", dry_run)
    _check.at_least("page_size", page_size, 1)
    _check.at_least("batch_size", batch_size, 1)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable or None, got {type(progress).__name__}")
    if not items:
        return []
    brokers = {t.broker for t in items}
    if len(brokers) > 1:
        raise ValueError(
            f"erase works on one broker per call, got targets of {sorted(brokers)}: call it "
            "once per broker"
        )
    (broker,) = brokers
    if connection is None:
        raise TypeError("connection must be a broker URL or a connected client, got None")
    if isinstance(connection, str):
        require_scheme(connection, type(items[0]).schemes, f"{broker} targets are erased")
    # each module raises msgdel.adapters._extra.missing(...) when its client is not installed
    module = importlib.import_module(f"msgdel.erasure.{_MODULES[broker]}")
    options = Options(dry_run, page_size, batch_size, progress)
    reports: list[ErasureReport] = await module.erase(connection, items, options)
    return reports


@attrs.frozen
class Options:
    """What every broker's erasure is given besides its targets (private to msgdel)."""

    dry_run: bool
    page_size: int
    batch_size: int
    progress: ProgressCallback | None

    def report(self, index: int, target: Target, scanned: int, matched: int, removed: int) -> None:
        if self.progress is not None:
            self.progress(Progress(index, _label(target), scanned, matched, removed))


def label(target: Target) -> str:
    """The report's name for `target` (its identifier fingerprinted)."""
    return _label(target)


def _targets(targets: object) -> list[Target]:
    if isinstance(targets, (ErasureTarget, KvKey)):
        raise TypeError(
            f"erase takes an iterable of targets, got one {type(targets).__name__}; pass a "
            "list: erase(connection, [target])"
        )
    if isinstance(targets, (str, bytes, bytearray)) or not isinstance(targets, Iterable):
        raise TypeError(f"erase takes an iterable of targets, got {type(targets).__name__}")
    items = list(targets)
    for index, item in enumerate(items):
        if not isinstance(item, (ErasureTarget, KvKey)):
            raise TypeError(
                f"targets[{index}] is a {type(item).__name__}, not an erasure target "
                "(RedisStreamField, JetStreamSubject, KvKey, ObjectName, RetainedTopics, "
                "KafkaKey); nothing was sent"
            )
    return items


def failed(target: Target, why: BaseException | str, **counts: Any) -> ErasureReport:
    """An `INCOMPLETE` report for `target` with the cause's text (secrets redacted)."""
    text = why if isinstance(why, str) else f"{type(why).__name__}: {why}"
    return ErasureReport(
        target.broker, _label(target), ErasureOutcome.INCOMPLETE, reason=redact(text), **counts
    )


def unerasable(target: Target, why: str) -> ErasureReport:
    """A `NOT_ERASABLE` report for `target`."""
    return ErasureReport(target.broker, _label(target), ErasureOutcome.NOT_ERASABLE, reason=why)


def found(
    target: Target, options: Options, matched: int, removed: int, **extra: Any
) -> ErasureReport:
    """The report of a target whose scan or count finished: `DRY_RUN`, `NOTHING_FOUND` or
    `ERASED`."""
    if options.dry_run:
        outcome = ErasureOutcome.DRY_RUN
    elif matched == 0 and removed == 0:
        outcome = ErasureOutcome.NOTHING_FOUND
    else:
        outcome = ErasureOutcome.ERASED
    return ErasureReport(
        target.broker, _label(target), outcome, matched=matched, removed=removed, **extra
    )
