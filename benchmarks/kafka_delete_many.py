"""Kafka: requests per ``delete_many`` on a three-broker cluster, one delete's latency, the apps.

Starts the test bed's three-broker Apache Kafka cluster (``--brokers 1``: one node) and a
topic of ``--partitions`` partitions, replication factor 2, whose leaders spread over the
brokers. Two parts:

1. Records consumed into FastStream ``KafkaMessage`` objects bound to a real
   ``AIOKafkaConsumer`` (as FastStream's parser builds them), in offset order, then deleted
   round by round on the same topic: each round one ``KafkaAdapter().delete_many`` of the next
   ``--batch`` messages (every partition in it), then one ``adapter.delete`` for each of the
   next ``--singles`` messages. Every request the adapter's admin client sends is counted by
   type. A flush needs one DeleteRecords per partition leader (not per partition, not per
   message); the figure is the DeleteRecords requests of a call against the distinct leaders
   of its partitions. On a replicated topic a DeleteRecords completes once the followers have
   moved their log start too, which they learn on their next fetch from the leader: up to
   ``replica.fetch.wait.max.ms`` (500 ms) on an idle partition. So one delete costs about
   that, and so does a flush of many.
2. A FastStream app over ``--app-records`` records of a fresh topic per run: ``consume only``
   (``AckPolicy.MANUAL``: no commit, nothing deleted), ``FastStream default`` (auto-commit,
   nothing deleted) and ``batched middleware`` (``DeleteMiddleware(batcher=Batcher())``: the
   default policy, plus per flush the adapter's reads of the other groups' commits and one
   DeleteRecords per leader). Interleaved over rounds, timed from the first record handled
   until the last was (and ``batcher.close()`` returned). Each run checks the log starts:
   untouched, or (middleware) at the end of every partition.

    .venv/bin/python benchmarks/kafka_delete_many.py [--batch 5000]
        [--singles 4] [--app-records 3000] [--rounds 5] [--brokers 3] [--quick]
"""

from __future__ import annotations

import asyncio
import collections
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, Rounds, figure, parser, sizes
from _servers import kafka_servers
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

import msgdel
from msgdel.adapters.kafka import KafkaAdapter
from msgdel.faststream import DeleteMiddleware

APPS = {
    "consume only": "fetches only (AckPolicy.MANUAL: no commit); the log is untouched",
    "FastStream default": "fetches, auto-commit (AckPolicy.ACK_FIRST); the log is untouched",
    "batched middleware": "fetches, auto-commit, and per flush ListGroups + OffsetFetch + "
    "ListOffsets + one DeleteRecords per leader; the log ends truncated",
}


async def make_topic(servers: list[str], topic: str, partitions: int, records: int) -> None:
    """A topic of ``partitions`` partitions (replication factor 2 where there are two
    brokers) holding ``records`` records of 32 bytes, spread round-robin."""
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
    """Count the requests the adapter's admin clients send from now on, by request type."""
    counts: collections.Counter[str] = collections.Counter()
    for connection in adapter._connections.values():
        client = connection.admin._client
        send = client.send

        async def counted(
            node_id: Any, request: Any, *args: Any, _send: Any = send, **kw: Any
        ) -> Any:
            counts[type(request).__name__.split("_")[0].removesuffix("Request")] += 1
            return await _send(node_id, request, *args, **kw)

        client.send = counted
    return counts


async def log_starts(
    servers: list[str], topic: str, partitions: int
) -> tuple[list[int], list[int]]:
    """Each partition's log start and end offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(partitions)]
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    return [starts[tp] for tp in parts], [ends[tp] for tp in parts]


# -- 1. requests per delete_many, and one delete's latency --------------------------------------
async def flushes(servers: list[str], args: Any) -> None:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    per_round = args.batch + args.singles
    records = 1 + per_round * args.rounds
    await make_topic(servers, topic, args.partitions, records)
    consumer, messages = await consume(servers, topic, records)
    messages.sort(key=lambda m: (m.raw_message.offset, m.raw_message.partition))
    cluster = consumer._client.cluster
    leader = {p: cluster.leader_for_partition(TopicPartition(topic, p))
              for p in range(args.partitions)}  # fmt: skip
    print(f"\n1. topic {topic}: {args.partitions} partitions, replication factor "
          f"{min(len(servers), 2)}, leaders {dict(sorted(leader.items()))} "
          f"({len(set(leader.values()))} distinct)", flush=True)  # fmt: skip
    adapter = KafkaAdapter()
    requests: list[int] = []
    leaders: list[int] = []
    others: list[int] = []
    many_seconds: list[float] = []
    single_seconds: list[float] = []
    removed = 0
    try:
        removed += (await adapter.delete(messages[0])).removed  # opens the admin client
        counts = count_requests(adapter)
        position = 1
        for _ in range(args.rounds):
            batch = messages[position : position + args.batch]
            position += args.batch
            counts.clear()
            began = time.perf_counter()
            results = await adapter.delete_many(batch)
            many_seconds.append(time.perf_counter() - began)
            assert all(r.outcome is msgdel.Outcome.DELETED for r in results), results[:3]
            removed += sum(r.removed for r in results)
            requests.append(counts["DeleteRecords"])
            others.append(sum(counts.values()) - counts["DeleteRecords"])
            leaders.append(len({leader[m.raw_message.partition] for m in batch}))
            for message in messages[position : position + args.singles]:
                began = time.perf_counter()
                result = await adapter.delete(message)
                single_seconds.append(time.perf_counter() - began)
                assert result.outcome is msgdel.Outcome.DELETED, result
                removed += result.removed
            position += args.singles
    finally:
        await adapter.aclose()
        await consumer.stop()
    starts, _ = await log_starts(servers, topic, args.partitions)
    assert sum(starts) == removed == records, (starts, removed, records)
    print(f"   {args.rounds} rounds: delete_many of {args.batch:,} messages (every partition), "
          f"then {args.singles} single deletes; log starts now {starts} ({removed:,} removed, "
          "as reported)")  # fmt: skip
    print(f"   DeleteRecords requests per delete_many call: {requests}; distinct leaders of its "
          f"partitions: {leaders}; other admin requests per call: {others}")  # fmt: skip
    each = " ".join(f"{s:.3f}" for s in many_seconds)
    print(f"   delete_many call: median {statistics.median(many_seconds):.3f} s ({each})")
    each = " ".join(f"{s:.3f}" for s in single_seconds)
    print(f"   single delete:    median {statistics.median(single_seconds):.3f} s ({each})")
    if len(servers) > 1:
        print("   A DeleteRecords on a replicated topic is answered once every in-sync follower "
              "has moved its\n   log start too. Followers learn the new log start from their "
              "next fetch of the leader,\n   which waits up to replica.fetch.wait.max.ms "
              "(500 ms) on an idle partition: so one\n   delete takes about that, and a flush "
              "of thousands about the same.")  # fmt: skip
    ratio = Ratio([r / n for r, n in zip(requests, leaders)])
    figure(f"Kafka DeleteRecords requests per flush / partition leaders ({len(servers)} brokers)",
           ratio.median, "== 1", "per leader", low=ratio.low, high=ratio.high,
           note=f"requests {requests}, leaders {leaders}")  # fmt: skip
    latency = Ratio(single_seconds)
    figure(f"Kafka single delete latency ({len(servers)} brokers)", latency.median, None, "s",
           low=latency.low, high=latency.high,
           note="replicated: followers learn the new log start on their next fetch "
           "(replica.fetch.wait.max.ms 500 ms)")  # fmt: skip
    singles = [
        statistics.median(single_seconds[n * args.singles : (n + 1) * args.singles])
        for n in range(args.rounds)
    ]
    rates = Ratio([args.batch / many * single for many, single in zip(many_seconds, singles)])
    figure(f"Kafka delete_many vs one delete per message, records/s ({len(servers)} brokers)",
           rates.median, None, "x", low=rates.low, high=rates.high)  # fmt: skip


# -- 2. the apps --------------------------------------------------------------------------------
async def app_rate(servers: list[str], arm: str, records: int, partitions: int) -> float:
    topic = f"app-{uuid.uuid4().hex[:8]}"
    await make_topic(servers, topic, partitions, records)
    registry = msgdel.Registry()  # its own adapters, closed after the run
    batcher = msgdel.Batcher(registry) if arm == "batched middleware" else None
    middlewares = [DeleteMiddleware(batcher=batcher)] if batcher else []
    broker = KafkaBroker(servers, logger=None, middlewares=middlewares, graceful_timeout=30)
    handled, first = 0, 0.0
    done = asyncio.Event()
    policy = AckPolicy.MANUAL if arm == "consume only" else AckPolicy.ACK_FIRST

    @broker.subscriber(topic, group_id=f"app-{topic}", auto_offset_reset="earliest",
                       ack_policy=policy)  # fmt: skip
    async def handle(body: bytes) -> None:
        nonlocal handled, first
        if not handled:
            first = time.perf_counter()
        handled += 1
        if handled >= records:
            done.set()

    try:
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        if batcher is not None:
            await batcher.close()
        elapsed = time.perf_counter() - first
    finally:
        await broker.stop()
        await registry.aclose()
    starts, ends = await log_starts(servers, topic, partitions)
    expected = ends if batcher is not None else [0] * partitions
    assert starts == expected, f"{arm}: log starts {starts}, expected {expected}"
    return records / elapsed


async def bench(servers: list[str], args: Any) -> None:
    await flushes(servers, args)
    apps = Rounds(list(APPS))
    for number in range(args.rounds):
        for arm in apps.order(number):
            apps.add(arm, await app_rate(servers, arm, args.app_records, args.partitions))
    apps.report(f"2. FastStream Kafka app (aiokafka), {args.app_records:,} records per run over "
                f"{args.partitions} partitions", "records/s", APPS)  # fmt: skip
    pairs = [
        ("batched middleware", "consume only", "Kafka batched middleware vs consume-only app"),
        ("batched middleware", "FastStream default",
         "Kafka batched middleware vs FastStream default (auto-commit) app"),
    ]  # fmt: skip
    for arm, baseline, name in pairs:
        print(f"  {name}: {apps.ratio(arm, baseline)}")
        apps.ratio(arm, baseline).figure(f"{name} ({len(servers)} brokers)", None)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--batch", type=int, help="messages per delete_many (5,000)")
    options.add_argument("--singles", type=int, help="single deletes per round (4)")
    options.add_argument("--app-records", type=int, help="records per app run (3,000)")
    options.add_argument("--partitions", type=int, default=6)
    options.add_argument("--brokers", type=int, choices=(1, 3), default=3)
    args = sizes(options.parse_args(), batch=(5_000, 1_200), singles=(4, 2),
                 app_records=(3_000, 1_000), rounds=(5, 3))  # fmt: skip
    with kafka_servers(cluster=args.brokers == 3) as servers:
        print(f"Apache Kafka: {len(servers)} broker(s)", flush=True)
        asyncio.run(bench(servers, args))


if __name__ == "__main__":
    main()
