"""Kafka: erasing one key from a six-partition compacted topic, until no consumer sees it.

Each round makes a fresh topic of six partitions (``cleanup.policy=compact`` with a cleaner
that runs within seconds: ``segment.ms=100``, ``min.cleanable.dirty.ratio=0.01``,
``max.compaction.lag.ms=1000``), writes ``--records`` records over ``--keys`` keys (each key
several times, on the partition the default partitioner picks), then erases one key with
``msgdel.erasure.erase`` (one tombstone to that key's partition) and reads the topic from its
start, twice a second, until no value of the key is left. A small record is written to the
key's partition before each read, so the segment holding the tombstone rolls and the cleaner
takes it, as steady traffic would. It prints, per round and as medians: the erase call's
duration, and the time from the call to the first read that found no value of the key. The
broker checks for cleanable logs every second (``log.cleaner.backoff.ms=1000`` in the test
bed); production brokers check every 15 s by default, and ``max.compaction.lag.ms`` (7 days
unless set) bounds the wait.

    .venv/bin/python benchmarks/erasure_kafka.py [--records 6000] [--keys 1000] [--rounds 3]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure, parser, sizes, stop_on_sigterm
from _servers import kafka_servers
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from msgdel.erasure import ErasureOutcome, KafkaKey, erase

PARTITIONS = 6
COMPACTING = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "1000",
    "delete.retention.ms": "100",
}
GIVE_UP = 60.0


async def fresh_topic(servers: list[str], records: int, keys: int) -> str:
    topic = f"erase-bench-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1, topic_configs=COMPACTING)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % keys}".encode())
            for i in range(records)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return topic


async def values_of(servers: list[str], topic: str, key: bytes) -> list[int]:
    """The partition of each value of `key` the topic still holds, read from the start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=None)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        starts, ends = await consumer.beginning_offsets(parts), await consumer.end_offsets(parts)
        found = []
        for tp in parts:
            consumer.seek(tp, starts[tp])
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.key == key and record.value is not None:
                        found.append(tp.partition)
        return found
    finally:
        await consumer.stop()


async def one_round(servers: list[str], records: int, keys: int) -> tuple[float, float, int]:
    """(seconds of the erase call, seconds until no value is seen, values erased)."""
    topic = await fresh_topic(servers, records, keys)
    key = b"k7"
    before = await values_of(servers, topic, key)
    (partition,) = set(before)  # the default partitioner puts a key on one partition
    began = time.perf_counter()
    (report,) = await erase(f"kafka://{','.join(servers)}", [KafkaKey(topic, key)])
    called = time.perf_counter() - began
    assert report.outcome is ErasureOutcome.MARKED, report
    producer = AIOKafkaProducer(bootstrap_servers=servers)
    await producer.start()
    try:
        while time.perf_counter() - began < GIVE_UP:
            await asyncio.sleep(0.5)
            await producer.send_and_wait(topic, b"x", key=b"filler", partition=partition)
            if not await values_of(servers, topic, key):
                return called, time.perf_counter() - began, len(before)
    finally:
        await producer.stop()
    return called, float("nan"), len(before)


async def main() -> None:
    args = sizes(parser(__doc__).parse_args(), rounds=(3, 1), records=(6000, 600), keys=(1000, 100))
    stop_on_sigterm()
    with kafka_servers() as servers:
        calls, gone = [], []
        for n in range(args.rounds):
            called, until, values = await one_round(servers, args.records, args.keys)
            calls.append(called)
            gone.append(until)
            print(f"round {n + 1}: {values} values of the key; erase call {called * 1000:.0f} ms,"
                  f" no value seen after {until:.1f} s")  # fmt: skip
    print(f"what is measured: {PARTITIONS} partitions, {args.records:,} records over "
          f"{args.keys:,} keys; one tombstone; reads from the start every 0.5 s")  # fmt: skip
    call, wait = statistics.median(calls), statistics.median(gone)
    print(f"erase call: median {call * 1000:.0f} ms ({min(calls) * 1000:.0f}-"
          f"{max(calls) * 1000:.0f}); key gone for a consumer after: median {wait:.1f} s "
          f"({min(gone):.1f}-{max(gone):.1f})")  # fmt: skip
    figure("Kafka erasure: erase call, six-partition compacted topic", round(call * 1000), None,
           "ms", low=round(min(calls) * 1000), high=round(max(calls) * 1000))  # fmt: skip
    figure("Kafka erasure: until no consumer sees the key (cleaner every 1 s)", round(wait, 1),
           None, "s", low=round(min(gone), 1), high=round(max(gone), 1))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
