"""Erasure on Kafka (aiokafka): tombstones on a compacted topic, truncation only on request.

Kafka cannot delete a record. The topic is scanned (every partition, from its log start to
the end offsets read when the scan starts; one consumer of no group, so no commit) for
records whose key is the target's key, and then:

- on a compacted topic (`cleanup.policy` holds `compact`), a tombstone (null value, same key)
  is produced to every partition that holds a value for the key: the records are `marked`
  now and removed by compaction, at the latest `max.compaction.lag.ms` after the tombstone
  (`gone_by`, from DescribeConfigs), and never before `min.compaction.lag.ms`;
- on a topic that is not compacted, nothing: removing a key's records would take the other
  records before them (DeleteRecords truncates a prefix), so the target is `NOT_ERASABLE`
  unless it says `truncate=True`. Then each partition holding the key is truncated up to and
  including the key's last record, with the Kafka adapter's address path
  (`delete_at(KafkaOffset(...))`, regardless of consumer groups), and the report's `removes`
  names the offsets that went.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

try:
    import aiokafka
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.structs import TopicPartition
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("kafka") from exc

from msgdel.adapters.kafka import KafkaAdapter, connection_settings, url_settings
from msgdel.address import KafkaOffset
from msgdel.erasure import (
    ErasureOutcome,
    ErasureReport,
    KafkaKey,
    Options,
    failed,
    found,
    label,
    unerasable,
)
from msgdel.errors import MsgdelError, redact
from msgdel.result import DeleteResult

NO_BOUND = 2**63 - 1
"""Kafka's `Long.MAX_VALUE`: `max.compaction.lag.ms` that sets no bound."""
CONFIGS = ("cleanup.policy", "min.compaction.lag.ms", "max.compaction.lag.ms",
           "delete.retention.ms")  # fmt: skip
TIMEOUT_MS = 15_000


async def erase(
    connection: object, targets: Sequence[Any], options: Options
) -> list[ErasureReport]:
    """Erase `targets` ([`KafkaKey`][msgdel.erasure.KafkaKey]) one after the other, with
    clients opened for `connection` (a `kafka://` URL, or a started `AIOKafkaAdminClient`
    whose connection settings are used)."""
    if isinstance(connection, str):
        settings = url_settings(connection)
    elif isinstance(connection, AIOKafkaAdminClient):
        settings = connection_settings(connection)
    else:
        kind = type(connection)
        raise TypeError(
            f"Kafka targets are erased on a kafka:// URL or an AIOKafkaAdminClient, got "
            f"{kind.__module__}.{kind.__qualname__}; nothing was sent"
        )
    reports = []
    for index, target in enumerate(targets):
        if not isinstance(target, KafkaKey):
            reports.append(unerasable(target, "a Kafka connection erases KafkaKey targets"))
            continue
        try:
            reports.append(await _erase(settings, index, target, options))
        except MsgdelError as exc:
            reports.append(failed(target, exc))
        except Exception as exc:  # aiokafka's errors have no common base worth naming
            reports.append(failed(target, f"{type(exc).__name__}: {exc}; run it again"))
    return reports


async def _configs(settings: dict[str, Any], topic: str) -> tuple[dict[str, str], list[int]] | None:
    """The topic's compaction configs and partitions, or None when it does not exist."""
    admin = AIOKafkaAdminClient(**settings, request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return None
        (described,) = await admin.describe_topics([topic])
        partitions = sorted(int(p["partition"]) for p in described["partitions"])
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(CONFIGS))]
        )
    finally:
        await admin.close()
    configs: dict[str, str] = {}
    for response in responses:
        for resource in response.resources:
            for entry in resource[4]:
                if entry[0] in CONFIGS and entry[1] is not None:
                    configs[entry[0]] = str(entry[1])
    return configs, partitions


class _Found:
    """Per partition: the key's records with a value, the last one's offset, the log start."""

    def __init__(self) -> None:
        self.values: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.start: dict[int, int] = {}
        self.scanned = 0


async def _scan(
    settings: dict[str, Any], index: int, target: KafkaKey, options: Options, ids: list[int]
) -> _Found:
    """Read every partition of the topic up to its end offsets (as the scan starts)."""
    key = target.key_bytes
    seen = _Found()
    consumer = aiokafka.AIOKafkaConsumer(
        **settings, group_id=None, enable_auto_commit=False, request_timeout_ms=TIMEOUT_MS,
        max_poll_records=options.page_size,
    )  # fmt: skip
    await consumer.start()
    try:
        partitions = [TopicPartition(target.topic, p) for p in ids]
        consumer.assign(partitions)
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
        seen.start = {tp.partition: starts[tp] for tp in partitions}
        left = {tp for tp in partitions if ends[tp] > starts[tp]}
        for tp in partitions:
            consumer.seek(tp, starts[tp])
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000, max_records=options.page_size)
            for tp, records in batches.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    seen.scanned += 1
                    if record.key == key:
                        seen.last[tp.partition] = record.offset
                        if record.value is not None:
                            seen.values[tp.partition] = seen.values.get(tp.partition, 0) + 1
                if records and records[-1].offset >= ends[tp] - 1:
                    left.discard(tp)
            for tp in list(left):  # compaction may have removed the last offsets
                if await consumer.position(tp) >= ends[tp]:
                    left.discard(tp)
            matched = sum(seen.values.values())
            options.report(index, target, seen.scanned, matched, 0)
    finally:
        await consumer.stop()
    return seen


async def _erase(
    settings: dict[str, Any], index: int, target: KafkaKey, options: Options
) -> ErasureReport:
    described = await _configs(settings, target.topic)
    if described is None:
        return unerasable(target, f"Kafka has no topic {target.topic!r} (check the name)")
    configs, ids = described
    compacted = "compact" in configs.get("cleanup.policy", "delete")
    seen = await _scan(settings, index, target, options, ids)
    matched = sum(seen.values.values())
    if compacted:
        return await _tombstone(settings, target, options, configs, seen, matched)
    removes = tuple(
        f"{target.topic}[{p}]:{seen.start[p]}-{last}" for p, last in sorted(seen.last.items())
    )
    if not target.truncate:
        if not matched:
            return found(target, options, 0, 0, scanned=seen.scanned)
        return ErasureReport(
            "kafka", label(target), ErasureOutcome.NOT_ERASABLE, matched=matched,
            scanned=seen.scanned, removes=removes,
            reason=f"topic {target.topic!r} is not compacted (cleanup.policy="
            f"{configs.get('cleanup.policy', 'delete')}): Kafka cannot remove a key's records "
            "without the other records before them. KafkaKey(..., truncate=True) truncates "
            "the offsets in `removes`, everyone's records among them",
        )  # fmt: skip
    if options.dry_run or not seen.last:
        return found(target, options, matched, 0, scanned=seen.scanned, removes=removes)
    return await _truncate(settings, target, options, seen, matched, removes)


async def _tombstone(
    settings: dict[str, Any],
    target: KafkaKey,
    options: Options,
    configs: dict[str, str],
    seen: _Found,
    matched: int,
) -> ErasureReport:
    lag = int(configs.get("max.compaction.lag.ms", NO_BOUND))
    note = (
        f"compaction removes them no sooner than min.compaction.lag.ms="
        f"{configs.get('min.compaction.lag.ms', '0')} and no later than max.compaction.lag."
        f"ms={lag if lag != NO_BOUND else 'unbounded'} after the tombstone; the tombstones "
        f"stay delete.retention.ms={configs.get('delete.retention.ms', '86400000')}"
    )
    if options.dry_run or matched == 0:
        return found(target, options, matched, 0, scanned=seen.scanned, reason=note)
    producer = aiokafka.AIOKafkaProducer(**settings, acks="all", request_timeout_ms=TIMEOUT_MS)
    await producer.start()
    try:
        for partition in sorted(seen.values):
            await producer.send_and_wait(
                target.topic, value=None, key=target.key_bytes, partition=partition
            )
    finally:
        await producer.stop()
    now = datetime.datetime.now(datetime.timezone.utc)
    gone_by = now + datetime.timedelta(milliseconds=lag) if lag != NO_BOUND else None
    return ErasureReport(
        "kafka", label(target), ErasureOutcome.MARKED, matched=matched, marked=matched,
        scanned=seen.scanned, gone_by=gone_by, reason=note,
    )  # fmt: skip


async def _truncate(
    settings: dict[str, Any],
    target: KafkaKey,
    options: Options,
    seen: _Found,
    matched: int,
    removes: tuple[str, ...],
) -> ErasureReport:
    import msgdel

    adapter = KafkaAdapter(protect_groups=False)
    addresses = [KafkaOffset(target.topic, p, last) for p, last in sorted(seen.last.items())]
    admin = AIOKafkaAdminClient(**settings, request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    try:
        outcomes = await msgdel.delete_at(admin, addresses, adapter=adapter,
                                          return_exceptions=True)  # fmt: skip
    finally:
        await adapter.aclose()
        await admin.close()
    removed = sum(o.removed for o in outcomes if isinstance(o, DeleteResult))
    errors = [o for o in outcomes if isinstance(o, MsgdelError)]
    if errors:
        return failed(target, redact(f"{errors[0]}; run it again to finish"), matched=matched,
                      removed=removed, scanned=seen.scanned, removes=removes)  # fmt: skip
    return found(
        target, options, matched, removed, scanned=seen.scanned,
        removes=removes, reason="truncated: every record before the key's last one in each "
        "partition went too, other people's among them",
    )  # fmt: skip
