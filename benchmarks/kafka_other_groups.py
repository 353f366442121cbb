"""Kafka: what capping truncation at the other consumer groups' commits costs.

``KafkaAdapter()`` (the default, ``protect_groups=True``) lists the cluster's consumer groups
and fetches their committed offsets (one OffsetFetch per group, all in flight at once) before
each DeleteRecords; ``KafkaAdapter(protect_groups=False)`` sends only the DeleteRecords. Both
arms do the same work on the broker: two topics of the same size and partitions, consumed by
their own group and already committed to the end by three other groups (so the default reads
them and still truncates to the message), ``delete_many`` of 500 consumed messages per call,
interleaved call by call. Prints records/s per arm, the median ratio over rounds, and checks
that every partition's log start reached its end.

    .venv/bin/python benchmarks/kafka_other_groups.py [--records 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from kafka_delete_many import consume, make_topic

from msgdel.adapters.kafka import KafkaAdapter
from tests.testbed.kafka import KafkaServer

BATCH = 500
PARTITIONS = 4


async def commit_to_end(servers: list[str], topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
    finally:
        await consumer.stop()


async def prepared(servers: list[str], records: int) -> tuple[str, Any, list[Any]]:
    topic = f"groups-{uuid.uuid4().hex[:8]}"
    await make_topic(servers, topic, PARTITIONS, records)
    for group in ("billing", "shipping", "audit"):
        await commit_to_end(servers, topic, f"{group}-{topic}")
    consumer, messages = await consume(servers, topic, records)
    messages.sort(key=lambda m: (m.raw_message.offset, m.raw_message.partition))
    return topic, consumer, messages


async def one_round(servers: list[str], records: int) -> dict[str, float]:
    arms = {
        "default (protect_groups=True)": KafkaAdapter(),
        "protect_groups=False": KafkaAdapter(protect_groups=False),
    }
    work = {name: await prepared(servers, records) for name in arms}
    seconds = dict.fromkeys(arms, 0.0)
    try:
        for start in range(0, records, BATCH):
            for name, adapter in arms.items():  # interleaved, call by call
                batch = work[name][2][start : start + BATCH]
                began = time.perf_counter()
                results = await adapter.delete_many(batch)
                seconds[name] += time.perf_counter() - began
                assert all(not isinstance(r, BaseException) for r in results), results[:3]
        for name, (topic, consumer, _) in work.items():
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            starts = await consumer.beginning_offsets(parts)
            ends = await consumer.end_offsets(parts)
            assert starts == ends, f"{name}: {starts} != {ends}"
    finally:
        for name, adapter in arms.items():
            await adapter.aclose()
            await work[name][1].stop()
    return {name: records / s for name, s in seconds.items()}


async def bench(servers: list[str], records: int, rounds: int) -> None:
    results = [await one_round(servers, records) for _ in range(rounds)]
    print(f"{records:,} records per arm and round over {PARTITIONS} partitions, delete_many of "
          f"{BATCH}, {rounds} rounds, three other groups committed to the end")  # fmt: skip
    for name in results[0]:
        each = " ".join(f"{r[name]:,.0f}" for r in results)
        median = statistics.median(r[name] for r in results)
        print(f"  {name:<32} {median:>9,.0f} records/s  ({each})")
    default, opt_out = results[0]
    ratios = [r[default] / r[opt_out] for r in results]
    print(f"  default / protect_groups=False: {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}; goal >= 0.90x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        server = KafkaServer(Path(workdir))
        server.start()
        try:
            asyncio.run(bench(server.servers, args.records, args.rounds))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
