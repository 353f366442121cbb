"""Kafka: what capping truncation at the other consumer groups' commits costs.

The default adapter (``protect_groups=True``) reads the committed offsets of the cluster's other
consumer groups before each DeleteRecords; ``protect_groups=False`` sends only the deletion.
Two arm pairs, each default against opt-out, for each client (aiokafka's ``KafkaAdapter``,
confluent-kafka's ``ConfluentAdapter``):

* ``delete_many``: 500 consumed messages per call, interleaved call by call, on two topics of
  the same size; records/s of a round from its median call (the first call of each arm, which
  opens the clients, is not timed);
* batched middleware: a FastStream app whose broker has ``DeleteMiddleware(batcher=Batcher())``
  consumes a fresh topic, the two arms one after the other, in alternating order by round;
  timed from the first message handled until ``batcher.close()`` returned.

A shorter round of both pairs, not timed, warms the broker up first. Every topic has four
partitions and is committed to the end by three other groups, so the default reads them and
still truncates to the message: both arms do the same work at the broker, and the script
checks that every partition's log start reached its end. The cluster
also holds ``--idle-groups`` groups that committed on another topic only: the default reads
every group the cluster lists, so what it costs grows with their number (group names are
fixed, so the count stays the same over the rounds). Each client gets a Kafka node of its own.
It prints records/s per arm (median and each round), the median ratio over rounds with its
range, and what each ``delete_many`` call sends (for aiokafka, counted on the adapter's
clients).

It ends with figure lines (``_common.figure``): each ratio against the goal of 0.9x.

    .venv/bin/python benchmarks/kafka_other_groups.py [--records 20000] [--app-records 3000]
        [--rounds 7] [--idle-groups 20] [--client aiokafka|confluent|both] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, parser, sizes
from _servers import kafka_servers
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faststream import Context
from kafka_delete_many import make_topic

import msgdel
from msgdel.adapters.kafka import KafkaAdapter
from msgdel.faststream import DeleteMiddleware

BATCH = 500
PARTITIONS = 4
OTHER_GROUPS = ("billing", "shipping", "audit")
DEFAULT, OPT_OUT = "default (protect_groups=True)", "protect_groups=False"
MESSAGE = Context("message")


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


async def fresh_topic(servers: list[str], records: int) -> str:
    """A topic of ``records`` records that the three other groups committed to the end."""
    topic = f"groups-{uuid.uuid4().hex[:8]}"
    await make_topic(servers, topic, PARTITIONS, records)
    for group in OTHER_GROUPS:
        await commit_to_end(servers, topic, group)
    return topic


async def idle_groups(servers: list[str], count: int) -> None:
    """``count`` groups that committed on a topic of their own only."""
    topic = f"idle-{uuid.uuid4().hex[:8]}"
    await make_topic(servers, topic, PARTITIONS, PARTITIONS)
    for number in range(count):
        await commit_to_end(servers, topic, f"idle-{number}")


async def assert_truncated(servers: list[str], topic: str, arm: str) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=servers)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
    finally:
        await consumer.stop()
    assert starts == ends, f"{arm}: {topic} log starts {starts} != ends {ends}"


# -- the two clients ----------------------------------------------------------------------------
class Aiokafka:
    name = "aiokafka"

    def adapter(self, protect: bool) -> Any:
        return KafkaAdapter(protect_groups=protect)

    def message_type(self) -> type:
        from faststream.kafka.message import KafkaMessage

        return KafkaMessage

    def broker(self, servers: list[str], **options: Any) -> Any:
        from faststream.kafka import KafkaBroker

        return KafkaBroker(servers, logger=None, **options)

    async def consumed(
        self, servers: list[str], topic: str, records: int, group: str
    ) -> tuple[Any, list[Any]]:
        """A stop callable and ``records`` messages bound to a real ``AIOKafkaConsumer`` of
        ``group``, as FastStream's parser builds them."""
        from faststream.kafka.message import KafkaMessage

        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=servers, group_id=group, auto_offset_reset="earliest"
        )
        await consumer.start()
        messages: list[Any] = []
        while len(messages) < records:
            for got in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                messages += [KafkaMessage(body=r.value, raw_message=r, consumer=consumer)
                             for r in got]  # fmt: skip
        return consumer.stop, messages


class Confluent(Aiokafka):
    name = "confluent"

    def adapter(self, protect: bool) -> Any:
        from msgdel.adapters.confluent import ConfluentAdapter

        return ConfluentAdapter(protect_groups=protect)

    def message_type(self) -> type:
        from faststream.confluent.message import KafkaMessage

        return KafkaMessage

    def broker(self, servers: list[str], **options: Any) -> Any:
        from faststream.confluent import KafkaBroker

        return KafkaBroker(",".join(servers), logger=None, **options)

    async def consumed(
        self, servers: list[str], topic: str, records: int, group: str
    ) -> tuple[Any, list[Any]]:
        """``records`` messages as FastStream's parser builds them, one per record, bound to
        the consumer of a running FastStream batch subscriber of ``group``."""
        from faststream.confluent.message import KafkaMessage

        broker = self.broker(servers)
        messages: list[Any] = []
        done = asyncio.Event()

        @broker.subscriber(topic, group_id=group, auto_offset_reset="earliest",
                           batch=True, max_records=5000)  # fmt: skip
        async def handle(body: Any, message: Any = MESSAGE) -> None:
            for raw in message.raw_message:
                messages.append(
                    KafkaMessage(body=raw.value(), raw_message=raw, consumer=message.consumer)
                )
            if len(messages) >= records:
                done.set()

        await broker.start()
        await asyncio.wait_for(done.wait(), 120)
        return broker.stop, messages


# -- the arms -----------------------------------------------------------------------------------
REQUEST_NAMES = {"Offset": "ListOffsets", "MultiGroupOffsetFetch": "OffsetFetch v8"}


def count_requests(adapter: KafkaAdapter, counts: collections.Counter[str]) -> None:
    """Count, by type, the requests the adapter's aiokafka clients send from now on."""
    for connection in adapter._connections.values():
        for holder in (connection.admin, connection.offsets):
            if holder is None:
                continue
            client = holder._client
            send = client.send

            async def counted(node: Any, request: Any, *args: Any, _send: Any = send,
                              **kw: Any) -> Any:  # fmt: skip
                kind = type(request).__name__.removesuffix("Request")
                counts[REQUEST_NAMES.get(kind, kind)] += 1
                return await _send(node, request, *args, **kw)

            client.send = counted


async def delete_many_round(
    kind: Aiokafka, servers: list[str], records: int, counts: dict[str, collections.Counter[str]]
) -> dict[str, float]:
    arms = {DEFAULT: kind.adapter(True), OPT_OUT: kind.adapter(False)}
    work: dict[str, tuple[str, Callable[[], Any], list[Any]]] = {}
    for number, name in enumerate(arms):
        topic = await fresh_topic(servers, records)
        stop, messages = await kind.consumed(servers, topic, records, f"bench-{number}")
        messages.sort(key=position)
        work[name] = (topic, stop, messages)
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    calls = 0
    try:
        for start in range(0, records, BATCH):
            for name, adapter in arms.items():  # interleaved, call by call
                batch = work[name][2][start : start + BATCH]
                began = time.perf_counter()
                results = await adapter.delete_many(batch)
                if start:  # the first call opens the clients: not timed
                    seconds[name].append(time.perf_counter() - began)
                elif isinstance(adapter, KafkaAdapter):
                    count_requests(adapter, counts[name])
                assert all(r.outcome is msgdel.Outcome.DELETED for r in results), results[:3]
            calls += bool(start)
        for name, (topic, _, _) in work.items():
            await assert_truncated(servers, topic, name)
    finally:
        for name, adapter in arms.items():
            await adapter.aclose()
            await work[name][1]()
    for name in arms:
        counts[name]["calls"] += calls
    # the median call: a burst of load from elsewhere on the machine hits a few calls only
    return {name: BATCH / statistics.median(s) for name, s in seconds.items()}


def position(message: Any) -> tuple[int, int]:
    """(offset, partition) of an aiokafka or confluent-kafka record: partitions interleaved."""
    raw = message.raw_message
    if callable(getattr(raw, "offset", None)):
        return raw.offset(), raw.partition()
    return raw.offset, raw.partition


async def app_rate(kind: Aiokafka, servers: list[str], records: int, protect: bool) -> float:
    """Records/s of a FastStream app deleting through DeleteMiddleware(batcher=Batcher())."""
    topic = await fresh_topic(servers, records)
    adapter = kind.adapter(protect)
    registry = msgdel.Registry(builtins=False)
    registry.register(kind.message_type(), adapter)
    batcher = msgdel.Batcher(registry)
    broker = kind.broker(servers, middlewares=[DeleteMiddleware(batcher=batcher)],
                         graceful_timeout=30)  # fmt: skip
    handled = 0
    first = 0.0
    done = asyncio.Event()

    @broker.subscriber(topic, group_id=f"app-{protect}", auto_offset_reset="earliest")
    async def handle(body: bytes) -> None:
        nonlocal handled, first
        if not handled:
            first = time.perf_counter()
        handled += 1
        if handled >= records:
            done.set()

    try:
        await broker.start()
        await asyncio.wait_for(done.wait(), 300)
        await batcher.close()
        elapsed = time.perf_counter() - first
    finally:
        await broker.stop()
        await registry.aclose()
        await adapter.aclose()
    await assert_truncated(servers, topic, "default" if protect else "opt-out")
    return records / elapsed


async def app_round(
    kind: Aiokafka, servers: list[str], records: int, number: int
) -> dict[str, float]:
    order = [(DEFAULT, True), (OPT_OUT, False)]
    rates = {}
    for name, protect in order if number % 2 == 0 else order[::-1]:
        rates[name] = await app_rate(kind, servers, records, protect)
    return rates


# -- the report ---------------------------------------------------------------------------------
def report(title: str, rounds: list[dict[str, float]]) -> Ratio:
    print(title)
    for name in (DEFAULT, OPT_OUT):
        each = " ".join(f"{r[name]:,.0f}" for r in rounds)
        median = statistics.median(r[name] for r in rounds)
        print(f"  {name:<32} {median:>9,.0f} records/s  ({each})")
    ratios = [r[DEFAULT] / r[OPT_OUT] for r in rounds]
    print(f"  default / protect_groups=False: {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}; goal >= 0.90x)")  # fmt: skip
    return Ratio(ratios)


SEQUENCE = {
    "aiokafka": {
        DEFAULT: "as the call begins, while the batch is prepared: ListGroups (each broker) + "
        "Metadata (the brokers, and the leaders of the previous call's topics) + OffsetFetch "
        "v8 (one per coordinator: the groups and partitions of the previous call); then "
        "ListOffsets (+ OffsetFetch for the groups or partitions the previous call did not "
        "have); then Metadata + DeleteRecords (aiokafka's delete_records)",
        OPT_OUT: "ListOffsets; then Metadata (leaders); then Metadata + DeleteRecords",
    },
    "confluent": {
        DEFAULT: "as the call begins: ListGroups (each broker) + one OffsetFetch per group "
        "(librdkafka takes one group per request; each group always through the same of the "
        "adapter's admin clients, at most 10 per client, whose coordinator caches of 11 then "
        "need no FindCoordinator after a group's first read); then ListOffsets (+ OffsetFetch "
        "for what the previous call did not have); then DeleteRecords (one per leader)",
        OPT_OUT: "ListOffsets; then DeleteRecords (one per leader)",
    },
}


def report_requests(kind: Aiokafka, counts: dict[str, collections.Counter[str]]) -> None:
    print("  what each delete_many call sends, in sequence ('+': in flight together):")
    for name in (DEFAULT, OPT_OUT):
        print(f"    {name}: {SEQUENCE[kind.name][name]}")
        calls = counts[name].pop("calls", 0)
        if calls and counts[name]:
            each = ", ".join(f"{key} {n / calls:.2f}" for key, n in sorted(counts[name].items()))
            print(f"      counted per call: {each}")


async def group_count(servers: list[str]) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        return len(await admin.list_consumer_groups())
    finally:
        await admin.close()


async def bench(kind: Aiokafka, servers: list[str], args: argparse.Namespace) -> None:
    await idle_groups(servers, args.idle_groups)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    # not timed: the broker's JIT compiles the paths both arms take (it runs with C1 only)
    warm = max(args.records // 4, 4 * BATCH)
    await delete_many_round(kind, servers, warm, collections.defaultdict(collections.Counter))
    await app_round(kind, servers, max(args.app_records // 3, 100), 0)
    many, app = [], []
    for number in range(args.rounds):  # the two arm pairs alternate round by round
        many.append(await delete_many_round(kind, servers, args.records, counts))
        app.append(await app_round(kind, servers, args.app_records, number))
    groups = await group_count(servers)
    print(f"\n{kind.name}: {groups} consumer groups in the cluster ({len(OTHER_GROUPS)} "
          f"committed on each topic, {args.idle_groups} idle, the benchmark's own)")  # fmt: skip
    ratio = report(f"delete_many of {BATCH}: {args.records:,} records per arm and round over "
                   f"{PARTITIONS} partitions, {args.rounds} rounds", many)  # fmt: skip
    ratio.figure(f"Kafka ({kind.name}) other groups: delete_many default vs protect_groups=False",
                 ">= 0.9", note=f"{groups} groups in the cluster")  # fmt: skip
    report_requests(kind, counts)
    ratio = report(f"batched middleware (DeleteMiddleware(batcher=Batcher())): "
                   f"{args.app_records:,} records per arm and round, {args.rounds} rounds",
                   app)  # fmt: skip
    ratio.figure(f"Kafka ({kind.name}) other groups: batched middleware default vs "
                 "protect_groups=False", ">= 0.9",
                 note=f"{groups} groups in the cluster")  # fmt: skip


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--records", type=int, help="per arm and round (20,000)")
    options.add_argument("--app-records", type=int, help="per app run (3,000)")
    options.add_argument("--idle-groups", type=int, default=20)
    options.add_argument("--client", choices=["aiokafka", "confluent", "both"], default="both")
    args = sizes(options.parse_args(), records=(20_000, 3_000), app_records=(3_000, 600),
                 rounds=(7, 3))  # fmt: skip
    kinds = {"aiokafka": [Aiokafka()], "confluent": [Confluent()]}
    for kind in kinds.get(args.client, [Aiokafka(), Confluent()]):
        with kafka_servers() as servers:
            asyncio.run(bench(kind, servers, args))


if __name__ == "__main__":
    main()
