"""JetStream: what keeping messages for other consumers costs against deleting at once.

``JetStreamAdapter()`` (the default) reads the stream's retention and its consumers once per
stream and call (``STREAM.INFO``, ``CONSUMER.LIST``) and keeps a message another consumer has
not acknowledged; ``JetStreamAdapter(ignore_other_consumers=True)`` sends only the deletes.
Both arms delete the same work: two streams of the same size, each read by its own durable
consumer and by a second one that has acknowledged everything (so the default checks it and
still deletes), ``delete_many`` of 500 per call and one ``delete`` per message, batch by batch
interleaved. Prints messages/s per arm, the median ratio over rounds, and checks both streams
end empty.

The batched-middleware pair runs a FastStream app whose broker has
``DeleteMiddleware(batcher=Batcher())`` and a pull subscriber (durable ``app``), one arm with
each adapter, in alternating order round by round, on a fresh stream of ``--app-count``
messages that a second consumer has acknowledged; timed from the first message handled until
``batcher.close()`` returned, and checked empty.

It ends with figure lines (``_common.figure``): each ratio, for information (no goal).

    .venv/bin/python benchmarks/nats_other_consumers.py [--count 10000] [--app-count 3000]
        [--rounds 5] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import nats
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, describe, parser, sizes
from _servers import nats_url

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from msgdel.faststream import DeleteMiddleware

BATCH = 500
ARMS = {
    "default (keep for other consumers)": JetStreamAdapter(),
    "ignore_other_consumers=True": JetStreamAdapter(ignore_other_consumers=True),
}


async def acknowledged(nc: Client, count: int) -> str:
    """A stream of ``count`` messages that consumer ``done`` has acknowledged."""
    js = nc.jetstream()
    stream = f"others_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"]))
    for i in range(count):
        await nc.publish(f"{stream}.in", b"payload-%d" % i)
    await nc.flush()
    while (await js.stream_info(stream)).state.messages < count:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the server stores asynchronously
    done = await js.pull_subscribe(f"{stream}.in", durable="done", stream=stream)
    acked = 0
    while acked < count:
        for m in await done.fetch(min(1000, count - acked), timeout=5):
            await m.ack()
            acked += 1
    await nc.flush()
    return stream


async def prepared(nc: Client, count: int) -> tuple[str, list[NatsMessage]]:
    js = nc.jetstream()
    stream = await acknowledged(nc, count)
    sub = await js.pull_subscribe(
        f"{stream}.in", durable="reader", stream=stream,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=count + 1),
    )  # fmt: skip
    got: list[NatsMessage] = []
    while len(got) < count:
        for m in await sub.fetch(min(1000, count - len(got)), timeout=5):
            got.append(NatsMessage(raw_message=m, body=m.data))
    return stream, got


async def one_round(nc: Client, count: int, single: int) -> dict[str, float]:
    work = {name: await prepared(nc, count) for name in ARMS}
    many = dict.fromkeys(ARMS, 0.0)
    one = dict.fromkeys(ARMS, 0.0)
    for start in range(0, count - single, BATCH):
        for name, adapter in ARMS.items():
            began = time.perf_counter()
            await adapter.delete_many(work[name][1][start : min(start + BATCH, count - single)])
            many[name] += time.perf_counter() - began
    for index in range(count - single, count):
        for name, adapter in ARMS.items():
            began = time.perf_counter()
            await adapter.delete(work[name][1][index])
            one[name] += time.perf_counter() - began
    for name, (stream, _) in work.items():
        left = (await nc.jetstream().stream_info(stream)).state.messages
        assert left == 0, f"{name}: {left} messages left in {stream}"
    rates = {f"{name}, delete_many": (count - single) / many[name] for name in ARMS}
    rates |= {f"{name}, delete": single / one[name] for name in ARMS}
    return rates


async def app_rate(nc: Client, url: str, count: int, adapter: JetStreamAdapter) -> float:
    """Messages/s of a FastStream app deleting through DeleteMiddleware(batcher=Batcher())."""
    stream = await acknowledged(nc, count)
    registry = msgdel.Registry(builtins=False)
    registry.register(NatsMessage, adapter)
    batcher = msgdel.Batcher(registry)
    broker = NatsBroker(url, middlewares=[DeleteMiddleware(batcher=batcher)], logger=None)
    handled, first = 0, 0.0
    done = asyncio.Event()

    @broker.subscriber(f"{stream}.in", stream=JStream(stream, declare=False), durable="app",
                       pull_sub=PullSub(batch_size=100, timeout=1))  # fmt: skip
    async def handle(body: bytes) -> None:
        nonlocal handled, first
        if not handled:
            first = time.perf_counter()
        handled += 1
        if handled == count:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        await batcher.close()
        elapsed = time.perf_counter() - first
    await registry.aclose()
    left = (await nc.jetstream().stream_info(stream)).state.messages
    assert left == 0, f"{left} messages left in {stream}"
    return count / elapsed


async def app_round(nc: Client, url: str, count: int, number: int) -> dict[str, float]:
    default, opt_out = ARMS
    order = [(default, False), (opt_out, True)]
    rates = {}
    for name, ignore in order if number % 2 == 0 else order[::-1]:
        adapter = JetStreamAdapter(ignore_other_consumers=ignore)
        rates[f"{name}, batched middleware"] = await app_rate(nc, url, count, adapter)
    return rates


async def bench(url: str, count: int, rounds: int, app_count: int) -> None:
    nc = await nats.connect(url)
    try:
        results = []
        for number in range(rounds):  # the two arm pairs alternate round by round
            rates = await one_round(nc, count, 500)
            results.append(rates | await app_round(nc, url, app_count, number))
    finally:
        await nc.close()
    print(f"{count:,} messages per arm and round ({count - 500:,} in delete_many of {BATCH}, "
          f"500 one by one), {app_count:,} through the batched middleware, "
          f"{rounds} rounds")  # fmt: skip
    for label in results[0]:
        each = " ".join(f"{r[label]:,.0f}" for r in results)
        print(f"  {label:<56} {statistics.median(r[label] for r in results):>9,.0f}/s  ({each})")
    default, opt_out = ARMS
    describe({
        default: "STREAM.INFO + CONSUMER.LIST per stream and call, then a no_erase "
        "STREAM.MSG.DELETE per message (100 in flight)",
        opt_out: "STREAM.INFO per stream and call, then the same deletes",
    })  # fmt: skip
    for call in ("delete_many", "delete", "batched middleware"):
        ratio = Ratio([r[f"{default}, {call}"] / r[f"{opt_out}, {call}"] for r in results])
        print(f"  default / opt-out, {call}: {ratio}")
        ratio.figure(f"NATS other consumers: {call} default vs ignore_other_consumers", None)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--count", type=int, help="per arm and round (10,000)")
    options.add_argument("--app-count", type=int, help="per app run (3,000)")
    args = sizes(options.parse_args(), count=(10_000, 2_000), app_count=(3_000, 1_000),
                 rounds=(5, 3))  # fmt: skip
    with nats_url() as url:
        asyncio.run(bench(url, args.count, args.rounds, args.app_count))


if __name__ == "__main__":
    main()
