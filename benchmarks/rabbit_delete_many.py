"""RabbitMQ: a FastStream consumer that deletes (settles) what it consumed, five ways.

Every arm is the same FastStream subscriber on the same channel prefetch (``--prefetch``,
default 2,000: above ``--batch`` so that a batch can be held unsettled), draining a queue of
its own filled with ``--count`` small messages. What each arm does at the broker:

- ``no-ack``: ``AckPolicy.ACK_FIRST``, a ``basic.consume`` with ``no-ack``: the broker forgets
  each message as it sends it, and the consumer sends nothing back. RabbitMQ applies no
  prefetch to a no-ack consumer: it sends the whole queue at once, and the client holds every
  delivery as a task of its own;
- ``FastStream default``: one ``basic.ack`` per message after the handler;
- ``raw ack(multiple=True)``: ``AckPolicy.MANUAL`` and one raw aio-pika
  ``ack(multiple=True)`` per ``--batch`` messages: the fewest frames an acknowledging consumer
  can send (unsafe in an application: it settles every delivery of the channel up to that tag);
- ``msgdel delete_many``: ``AckPolicy.MANUAL`` and ``RabbitAdapter.delete_many`` on every
  ``--batch`` consumed messages (one ``ack(multiple=True)`` per batch, as it found no gap);
- ``batched middleware``: ``DeleteMiddleware(batcher=Batcher())`` under the default policy:
  FastStream still sends its ``basic.ack`` per message (a delivery cannot wait unsettled for a
  batch), and the batch finds each one settled already (``ALREADY_GONE``, nothing sent).

The delivery ceiling at the prefetch, per round, is the faster of the two arms that do the
least at the broker: ``no-ack`` and ``raw ack(multiple=True)``. The unbounded no-ack
consumer alone is no reliable ceiling: in one run of 20,000 messages it drained slower than
every arm the prefetch bounds, in another it was the fastest.

Timed from the first message handled until the last was handled (for the middleware, until
``batcher.close()`` returned). After every run the queue must be empty once the consumer has
closed (an unsettled delivery would be back in it). The arms run interleaved over ``--rounds``
rounds; it prints medians, ranges and per-round ratios, then figure lines.

    .venv/bin/python benchmarks/rabbit_delete_many.py [--count 20000] [--batch 1000]
        [--prefetch 2000] [--rounds 5] [--quick] [--url amqp://...]
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aio_pika
from _common import Ratio, Rounds, describe, parser, sizes
from _servers import rabbit_url
from faststream.middlewares import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage

import msgdel
from msgdel.adapters.rabbit import RabbitAdapter
from msgdel.faststream import DeleteMiddleware

LABELS = {
    "no_ack": "no-ack consumer (ACK_FIRST)",
    "default": "FastStream default: ack per message",
    "raw_multiple": "raw ack(multiple=True) per batch",
    "delete_many": "msgdel delete_many per batch (MANUAL)",
    "middleware": "DeleteMiddleware(batcher=Batcher())",
}
WHAT = {
    "no_ack": "basic.consume no-ack: the broker drops each message as it delivers it; "
    "nothing is sent back (no prefetch applies: the whole queue comes at once)",
    "default": "one basic.ack per message after the handler",
    "raw_multiple": "one basic.ack(multiple=True) per batch (unsafe in an app)",
    "delete_many": "one basic.ack(multiple=True) per batch, through msgdel's checks and results",
    "middleware": "FastStream's basic.ack per message; the batch finds them settled and sends "
    "nothing",
}


async def fill(url: str, count: int) -> str:
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


async def depth(url: str, name: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(name, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def drain(url: str, count: int, arm: str, batch: int, prefetch: int) -> float:
    """Messages/s of a FastStream subscriber consuming (and settling) ``count`` messages."""
    name = await fill(url, count)
    batcher = msgdel.Batcher() if arm == "middleware" else None
    middlewares = [DeleteMiddleware(batcher=batcher)] if batcher else []
    broker = RabbitBroker(url, logger=None, middlewares=middlewares)
    adapter = RabbitAdapter()
    done = asyncio.Event()
    seen, first = 0, 0.0
    held: list[Any] = []
    policy = {
        "no_ack": AckPolicy.ACK_FIRST,
        "raw_multiple": AckPolicy.MANUAL,
        "delete_many": AckPolicy.MANUAL,
    }.get(arm, AckPolicy.REJECT_ON_ERROR)

    @broker.subscriber(
        RabbitQueue(name, declare=False),
        ack_policy=policy,
        channel=Channel(prefetch_count=prefetch),
    )
    async def handle(body: bytes, message: RabbitMessage) -> None:
        nonlocal seen, held, first
        if not seen:
            first = time.perf_counter()
        seen += 1
        if arm in ("delete_many", "raw_multiple"):
            held.append(message)
            if len(held) >= batch or seen == count:
                chunk, held = held, []
                if arm == "delete_many":
                    results = await adapter.delete_many(chunk)
                    assert all(
                        isinstance(r, msgdel.DeleteResult) and r.outcome is msgdel.Outcome.DELETED
                        for r in results
                    ), results[:3]
                else:  # settles every delivery up to the newest: only safe in a benchmark
                    newest = max(chunk, key=lambda m: m.raw_message.delivery_tag)
                    await newest.raw_message.ack(multiple=True)
        if seen == count:
            done.set()

    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        if batcher is not None:
            await batcher.close()
        seconds = time.perf_counter() - first
    left = await depth(url, name)
    if left:
        raise SystemExit(f"{arm}: queue {name} still holds {left} messages")
    return count / seconds


async def bench(url: str, count: int, batch: int, prefetch: int, rounds: int) -> None:
    print(
        f"RabbitMQ: {count:,} messages per run, batches of {batch:,}, channel prefetch "
        f"{prefetch:,} in every arm, {rounds} rounds",
        flush=True,
    )
    runs = Rounds(list(LABELS))
    for number in range(rounds):
        for arm in runs.order(number):
            runs.add(arm, await drain(url, count, arm, batch, prefetch))
    runs.report("messages/s per arm", "msg/s", labels=LABELS)
    describe(WHAT, LABELS)
    print()
    # The ceiling at this prefetch, per round: the faster of the two arms that do the least at
    # the broker. A no-ack consumer is not bound by the prefetch (RabbitMQ applies none to it):
    # the broker sends it the whole queue at once and the client holds every delivery as a task
    # of its own, which sometimes drains slower than the arms the prefetch bounds; the fewest
    # frames a consumer that the prefetch bounds can send is one ack(multiple=True) per batch.
    ceiling = [max(pair) for pair in zip(runs.values["no_ack"], runs.values["raw_multiple"])]
    faster = sum(n >= r for n, r in zip(runs.values["no_ack"], runs.values["raw_multiple"]))
    print(f"  delivery ceiling at prefetch {prefetch:,}, per round the faster of the no-ack and "
          f"the raw ack(multiple=True) arms: no-ack in {faster} of {rounds} rounds")  # fmt: skip
    against = Ratio([d / c for d, c in zip(runs.values["delete_many"], ceiling)])
    pairs = [
        ("delete_many", "default", ">= 1.2", "RabbitMQ delete_many vs FastStream ack per message"),
        ("middleware", "default", ">= 1.2",
         "RabbitMQ batched middleware vs FastStream ack per message"),
        ("delete_many", "raw_multiple", None, "RabbitMQ delete_many vs raw ack(multiple=True)"),
        ("delete_many", "no_ack", None,
         "RabbitMQ delete_many vs no-ack consumer (no prefetch applies to it)"),
        ("default", "no_ack", None, "RabbitMQ FastStream ack per message vs no-ack consumer"),
    ]  # fmt: skip
    ceiling_name = (
        f"RabbitMQ delete_many vs delivery ceiling at prefetch {prefetch:,} (the faster of "
        "no-ack and raw ack(multiple=True), per round)"
    )
    print(f"  {ceiling_name}: {against}  (goal >= 0.9x)")
    for arm, baseline, goal, name in pairs:
        note = f"  (goal {goal}x)" if goal else ""
        print(f"  {name}: {runs.ratio(arm, baseline)}{note}")
    against.figure(ceiling_name, ">= 0.9")
    for arm, baseline, goal, name in pairs:
        runs.ratio(arm, baseline).figure(name, goal)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--count", type=int, help="messages per run (20,000; quick 5,000)")
    options.add_argument("--batch", type=int, default=1_000)
    options.add_argument("--prefetch", type=int, default=2_000)
    options.add_argument("--url", help="an existing RabbitMQ (default: start a private node)")
    args = sizes(options.parse_args(), count=(20_000, 5_000), rounds=(5, 3))
    if args.prefetch <= args.batch:
        raise SystemExit("--prefetch must exceed --batch, or a held batch stops the delivery")
    if args.url:
        asyncio.run(bench(args.url, args.count, args.batch, args.prefetch, args.rounds))
        return
    with rabbit_url() as url:
        asyncio.run(bench(url, args.count, args.batch, args.prefetch, args.rounds))


if __name__ == "__main__":
    main()
