"""Benchmark: ``delete_many`` over many consumed Kafka records vs one DeleteRecords per message.

Starts the test bed's Apache Kafka (``--cluster`` for the three-broker cluster), publishes
``--records`` records over ``--partitions`` partitions, consumes them into FastStream
``KafkaMessage`` objects bound to a real ``AIOKafkaConsumer`` (as FastStream's parser does), then
deletes them:

* ``delete_many``: the adapter coalesces to one deletion point per partition, one request per
  partition leader;
* per message: ``adapter.delete(msg)`` for each message, in offset order, on a fresh copy of the
  topic (``--per-message`` records, default 2,000; the figure for all records is extrapolated).

It prints the requests each approach sent (counted on the admin client's connection) and the
wall time. Run: ``.venv/bin/python benchmarks/kafka_delete_many.py [--cluster]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka.message import KafkaMessage

from msgdel.adapters.kafka import KafkaAdapter
from tests.testbed.kafka import KafkaCluster, KafkaServer


async def make_topic(servers: list[str], topic: str, partitions: int, records: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        rf = min(len(servers), 2)
        await admin.create_topics([NewTopic(topic, partitions, rf)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=20, max_batch_size=256_000)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, b"x" * 32, partition=i % partitions) for i in range(records)
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume(servers: list[str], topic: str, records: int) -> tuple[Any, list[Any]]:
    """A started consumer and ``records`` KafkaMessage objects bound to it."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=servers, group_id=f"bench-{topic}", auto_offset_reset="earliest"
    )
    await consumer.start()
    messages: list[Any] = []
    while len(messages) < records:
        batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
        for recs in batch.values():
            messages += [KafkaMessage(body=r.value, raw_message=r, consumer=consumer) for r in recs]
    return consumer, messages


def count_requests(adapter: KafkaAdapter) -> collections.Counter[str]:
    """Count the requests the adapter's admin clients send, by request type."""
    counts: collections.Counter[str] = collections.Counter()
    for connection in adapter._connections.values():
        client = connection.admin._client
        send = client.send

        async def counted(
            node_id: Any, request: Any, *args: Any, _send: Any = send, **kw: Any
        ) -> Any:
            counts[type(request).__name__.split("_")[0]] += 1
            return await _send(node_id, request, *args, **kw)

        client.send = counted
    return counts


async def run(servers: list[str], records: int, partitions: int, per_message: int) -> None:
    for label, n, coalesce in (
        ("delete_many", records, True),
        ("one delete per message", per_message, False),
    ):
        topic = f"bench-{uuid.uuid4().hex[:8]}"
        await make_topic(servers, topic, partitions, n)
        print(f"  published {n} records to {topic}", file=sys.stderr, flush=True)
        consumer, messages = await consume(servers, topic, n)
        print(f"  consumed {len(messages)} records", file=sys.stderr, flush=True)
        adapter = KafkaAdapter()
        try:
            await adapter.delete(messages[0])  # opens the admin client (not timed)
            counts = count_requests(adapter)
            began = time.perf_counter()
            if coalesce:
                results = await adapter.delete_many(messages)
            else:
                results = [await adapter.delete(m) for m in messages]
            seconds = time.perf_counter() - began
        finally:
            await adapter.aclose()
            await consumer.stop()
        removed = sum(r.removed for r in results)
        line = (
            f"{label:24} {n:>7} records  {seconds:8.3f}s  "
            f"DeleteRecords requests: {counts['DeleteRecordsRequest']:>6}  "
            f"all admin requests: {sum(counts.values()):>6}  removed: {removed} "
            "(+1 by the untimed first delete that opens the admin client)"
        )
        if n != records:
            line += f"  (~{seconds / n * records:.0f}s for {records})"
        print(line, flush=True)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # so the broker is stopped on `timeout`
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--per-message", type=int, default=2_000)
    parser.add_argument("--cluster", action="store_true", help="three brokers instead of one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = KafkaCluster(Path(tmp)) if args.cluster else KafkaServer(Path(tmp))
        server.start()
        try:
            servers = [s.url for s in getattr(server, "nodes", [server])]
            print(
                f"Apache Kafka: {len(servers)} broker(s), {args.partitions} partitions",
                flush=True,
            )
            asyncio.run(run(servers, args.records, args.partitions, args.per_message))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
