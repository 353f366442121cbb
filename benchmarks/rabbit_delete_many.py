"""RabbitMQ: consuming and deleting with msgdel's ``delete_many`` vs acking one by one.

Run from the repository root (it starts its own RabbitMQ node from the test bed)::

    .venv/bin/python -m benchmarks.rabbit_delete_many            # 20,000 messages per run
    .venv/bin/python -m benchmarks.rabbit_delete_many --count 5000 --url amqp://guest:guest@127.0.0.1:5672/

Each run fills its own queue, then times a FastStream subscriber draining it four ways:

- no acknowledgement at all (``AckPolicy.ACK_FIRST``: the broker forgets a message when it
  delivers it): the delivery ceiling;
- FastStream's default, one ``basic.ack`` per message after the handler;
- ``AckPolicy.MANUAL`` and one raw aio-pika ``ack(multiple=True)`` per ``--batch`` messages:
  the cheapest way any acknowledging consumer can remove them (unsafe in an application: it
  settles every delivery of the channel up to that tag, whoever holds it);
- ``AckPolicy.MANUAL`` and ``msgdel.delete_many`` on every ``--batch`` consumed messages.

After every run the queue must be empty once the consumer has closed (an unsettled delivery
would be back in it). ``--repeat`` interleaved rounds; figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika
from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

from msgdel.adapters.rabbit import RabbitAdapter


async def _fill(url: str, count: int) -> str:
    """A new queue holding ``count`` small messages; returns its name."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.declare_queue(name)
        for i in range(count):
            await channel.default_exchange.publish(
                aio_pika.Message(b"payload-%d" % i), routing_key=name
            )
        for _ in range(600):  # publishing without confirms: wait until the queue has them
            await asyncio.sleep(0.05)
            declared = await channel.declare_queue(name, passive=True)
            if (declared.declaration_result.message_count or 0) >= count:
                break
    finally:
        await connection.close()
    return name


async def _depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(name, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def _drain(url: str, count: int, mode: str, batch: int) -> float:
    """Seconds for a FastStream subscriber to consume (and settle) ``count`` messages."""
    name = await _fill(url, count)
    broker = RabbitBroker(url, logger=None)
    adapter = RabbitAdapter()
    done = asyncio.Event()
    seen = 0
    held: list[Any] = []
    policy = {
        "none": AckPolicy.ACK_FIRST,
        "one_by_one": AckPolicy.REJECT_ON_ERROR,
        "raw_multiple": AckPolicy.MANUAL,
        "delete_many": AckPolicy.MANUAL,
    }[mode]

    @broker.subscriber(RabbitQueue(name, declare=False), ack_policy=policy)
    async def handle(body: bytes, message: RabbitMessage) -> None:
        nonlocal seen, held
        seen += 1
        if mode in ("delete_many", "raw_multiple"):
            held.append(message)
            if len(held) >= batch or seen == count:
                chunk, held = held, []
                if mode == "delete_many":
                    await adapter.delete_many(chunk)
                else:  # settles every delivery up to the newest: only safe in a benchmark
                    newest = max(chunk, key=lambda m: m.raw_message.delivery_tag)
                    await newest.raw_message.ack(multiple=True)
        if seen == count:
            done.set()

    async with broker:
        await broker.connect()
        began = time.perf_counter()
        await broker.start()
        await asyncio.wait_for(done.wait(), 300)
        seconds = time.perf_counter() - began
    left = await _depth(url, name)
    if left:
        raise SystemExit(f"{mode}: queue {name} still holds {left} messages")
    return seconds


LABELS = {
    "none": "no acknowledgement (delivery ceiling)",
    "one_by_one": "FastStream default: ack one by one",
    "raw_multiple": "raw aio-pika ack(multiple=True) per batch",
    "delete_many": "msgdel delete_many (MANUAL ack policy)",
}


async def bench(url: str, count: int, batch: int, repeat: int) -> None:
    print(f"{count:,} messages per run, delete_many every {batch:,}, {repeat} rounds\n")
    runs: dict[str, list[float]] = {mode: [] for mode in LABELS}
    for _ in range(repeat):
        for mode in LABELS:  # interleaved, so load from elsewhere hits every mode alike
            runs[mode].append(await _drain(url, count, mode, batch))
    for mode, label in LABELS.items():
        seconds = min(runs[mode])
        print(f"{label:<42} {seconds:7.2f} s  {count / seconds:9,.0f} messages/s (best)")
    print("\ntime vs the delivery ceiling: best vs best, and the median of each round's ratio")
    for mode in ("one_by_one", "raw_multiple", "delete_many"):
        best = (min(runs[mode]) / min(runs["none"]) - 1) * 100
        per_round = [(t / c - 1) * 100 for t, c in zip(runs[mode], runs["none"])]
        print(f"{LABELS[mode]:<42} {best:+6.1f}%  {statistics.median(per_round):+6.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(bench(args.url, args.count, args.batch, args.repeat))
        return
    from tests.testbed.rabbit import RabbitServer

    with tempfile.TemporaryDirectory() as workdir:
        server = RabbitServer(Path(workdir))
        server.start()
        try:
            asyncio.run(bench(server.url, args.count, args.batch, args.repeat))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
