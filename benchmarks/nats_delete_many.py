"""NATS JetStream: msgdel's ``delete_many`` against nats-py and the raw request, and the apps.

Starts its own nats-server with JetStream. Two parts, each with its arms interleaved over
``--rounds`` rounds (rotated round by round), medians, ranges and per-round ratios:

1. Deleting ``--count`` consumed messages, each arm on a stream of its own (the messages
   consumed first, untimed, into FastStream ``NatsMessage`` objects). JetStream deletes one
   sequence per request (``$JS.API.STREAM.MSG.DELETE``); what each arm sends:

   - ``nats-py one by one``: ``js.delete_msg`` awaited one at a time: one request each, which
     nats-py always sends without ``no_erase`` (the server overwrites the message: erase);
   - ``nats-py 100 in flight``: the same ``js.delete_msg`` (erase), ``--concurrency`` at once;
   - ``raw no_erase, 100 in flight``: the request msgdel sends (``{"seq": n, "no_erase":
     true}``), ``--concurrency`` at once, through ``nc.request``;
   - ``msgdel no_erase``: ``JetStreamAdapter().delete_many`` (``no_erase``, the default), after
     reading the stream's state once (``STREAM.INFO`` + ``CONSUMER.LIST``): the same requests,
     pipelined (published with a reply subject on one inbox subscription of the call, not
     ``nc.request``), at most ``--concurrency`` unanswered;
   - ``msgdel erase``: ``JetStreamAdapter(erase=True).delete_many``, the same with erase;
   - ``disk: fsync loop``: no NATS: what nats-server 2.9 does to the disk for each erase
     (open the stream's block file, overwrite a few bytes, fsync, close), ``--count`` times in
     a file of the temporary folder, where the server stores (only when the benchmark started
     the server).

   Every stream must be empty afterwards. The server erases one message at a time, each
   awaiting its fsync, in the read loop of the connection: every erase arm runs at the disk's
   fsync rate, which on a shared machine moves 2-3x within seconds, so compare the erase arms
   round by round (the ratios), and with the disk arm.
2. A FastStream app (pull subscriber, ``batch_size=100``, durable, the same consumer config in
   every arm) over ``--app-count`` messages: ``consume only`` (``AckPolicy.MANUAL``: no ack,
   nothing deleted), ``FastStream default`` (an ack per message, nothing deleted) and
   ``batched middleware`` (``DeleteMiddleware(batcher=Batcher())``: FastStream's ack per
   message, and per batch the deletes, ``--concurrency`` in flight). Timed from the first
   message handled until the last was (and ``batcher.close()`` returned); the stream must
   hold every message after the first two and none after the third.

    .venv/bin/python benchmarks/nats_delete_many.py [--count 10000] [--app-count 3000]
        [--concurrency 100] [--rounds 5] [--quick] [--url nats://...]
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
from _common import Rounds, parser, sizes
from _servers import nats_url
from faststream import AckPolicy as FastStreamAckPolicy
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsMessage
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from msgdel.faststream import DeleteMiddleware

DELETES = {
    "nats-py one by one": "delete_msg awaited one at a time: a request each, erase",
    "nats-py 100 in flight": "delete_msg, 100 at once: a request each, erase",
    "raw no_erase, 100 in flight": "nc.request STREAM.MSG.DELETE {seq, no_erase: true}, 100 "
    "at once",
    "msgdel no_erase": "delete_many: STREAM.INFO + CONSUMER.LIST (0.4 ms, and a few us of "
    "Python per message before the first request), then a no_erase request each, pipelined "
    "on one reply subscription (no nc.request), 100 unanswered at most",
    "msgdel erase": "delete_many(erase=True): the same, each request an erase",
    "disk: fsync loop": "no NATS, fsyncs/s not deletes/s: open, 40-byte write, fsync, close of "
    "a file in the temporary folder (the server's store's), as nats-server does for each erase; "
    "the erase arms' ceiling",
}
APPS = {
    "consume only": "pull (fetch 100), no ack: every message stays in the stream",
    "FastStream default": "pull, an ack per message: every message stays in the stream",
    "batched middleware": "pull, an ack per message, the batches' deletes (100 in flight): "
    "the stream ends empty",
}


async def fill(nc: Client, count: int) -> str:
    """A new stream holding ``count`` small messages; returns its name."""
    js = nc.jetstream()
    stream = f"bench_{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"]))
    for i in range(count):
        await nc.publish(f"{stream}.in", b"payload-%d" % i)
    await nc.flush()
    for _ in range(600):  # the server stores asynchronously; wait up to 30 s
        if (await js.stream_info(stream)).state.messages >= count:
            break
        await asyncio.sleep(0.05)
    return stream


async def consume(nc: Client, stream: str, count: int) -> list[NatsMessage]:
    """Every message of ``stream`` as the NatsMessage a FastStream handler would receive."""
    sub = await nc.jetstream().pull_subscribe(
        f"{stream}.in",
        durable=f"{stream}_c",
        stream=stream,
        # As if FastStream had acknowledged each message already: no pending acks to track.
        config=ConsumerConfig(ack_policy=AckPolicy.NONE),
    )
    got: list[NatsMessage] = []
    while len(got) < count:
        for m in await sub.fetch(min(1000, count - len(got)), timeout=5):
            got.append(NatsMessage(raw_message=m, body=m.data))
    await sub.unsubscribe()
    return got


async def stored(nc: Client, stream: str) -> int:
    return int((await nc.jetstream().stream_info(stream)).state.messages)


async def bounded(jobs: list[Callable[[], Awaitable[Any]]], limit: int) -> None:
    """Run ``jobs`` with at most ``limit`` in flight."""
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    await asyncio.gather(*(worker() for _ in range(limit)))


def fsync_rate(count: int) -> float:
    """Per second, ``count`` times what nats-server 2.9 does to its disk for one erase (its
    ``eraseMsg``): open the block file, overwrite a record, fsync, close."""
    with tempfile.NamedTemporaryFile(prefix="fsync_probe_") as probe:
        probe.write(os.urandom(1 << 20))
        probe.flush()
        os.fsync(probe.fileno())
        began = time.perf_counter()
        for index in range(count):
            fd = os.open(probe.name, os.O_RDWR)
            try:
                os.pwrite(fd, os.urandom(40), index * 64 % (1 << 20))
                os.fsync(fd)
            finally:
                os.close(fd)
        return count / (time.perf_counter() - began)


async def delete_rate(nc: Client, arm: str, count: int, concurrency: int) -> float:
    """Deletes/s of one arm over a fresh stream of ``count`` messages."""
    if arm == "disk: fsync loop":
        return await asyncio.to_thread(fsync_rate, count)
    js = nc.jetstream()
    stream = await fill(nc, count)
    # Every arm deletes consumed messages: a stream whose consumer has delivered them is
    # slower to erase from (measured: 15-30% fewer erase deletes/s) than one without.
    messages = await consume(nc, stream, count)
    run: Callable[[], Awaitable[Any]]
    if arm == "nats-py one by one":

        async def run() -> None:
            for seq in range(1, count + 1):
                await js.delete_msg(stream, seq)

    elif arm == "nats-py 100 in flight":

        def run() -> Awaitable[None]:
            jobs = [lambda s=seq: js.delete_msg(stream, s) for seq in range(1, count + 1)]
            return bounded(jobs, concurrency)

    elif arm == "raw no_erase, 100 in flight":
        subject = f"$JS.API.STREAM.MSG.DELETE.{stream}"

        async def one(seq: int) -> None:
            reply = await nc.request(subject, b'{"seq":%d,"no_erase":true}' % seq, timeout=5)
            assert reply.data.startswith(b'{"type":"io.nats.jetstream.api.v1.stream_msg_delete_'
                                         b'response","success":true'), reply.data  # fmt: skip

        def run() -> Awaitable[None]:
            return bounded([lambda s=seq: one(s) for seq in range(1, count + 1)], concurrency)

    else:
        adapter = JetStreamAdapter(erase=arm == "msgdel erase", concurrency=concurrency)

        async def run() -> None:
            results = await adapter.delete_many(messages)
            assert all(
                isinstance(r, msgdel.DeleteResult) and r.outcome is msgdel.Outcome.DELETED
                for r in results
            ), results[:3]

    began = time.perf_counter()
    await run()
    seconds = time.perf_counter() - began
    left = await stored(nc, stream)
    if left:
        raise SystemExit(f"{arm}: stream {stream} still holds {left} messages")
    await js.delete_stream(stream)
    return count / seconds


async def app_rate(nc: Client, url: str, arm: str, count: int, concurrency: int) -> float:
    """Messages/s of one FastStream app run over a fresh stream of ``count`` messages."""
    stream = await fill(nc, count)
    batcher = None
    middlewares = []
    if arm == "batched middleware":
        registry = msgdel.Registry(builtins=False)
        registry.register(NatsMessage, JetStreamAdapter(concurrency=concurrency))
        batcher = msgdel.Batcher(registry)
        middlewares = [DeleteMiddleware(batcher=batcher)]
    broker = NatsBroker(url, middlewares=middlewares, logger=None)
    handled, first = 0, 0.0
    done = asyncio.Event()
    policy = FastStreamAckPolicy.MANUAL if arm == "consume only" else FastStreamAckPolicy.ACK

    @broker.subscriber(
        f"{stream}.in", stream=JStream(stream, declare=False), durable="app",
        pull_sub=PullSub(batch_size=100, timeout=1), ack_policy=policy,
        config=ConsumerConfig(max_ack_pending=count + 1),
    )  # fmt: skip
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
        if batcher is not None:
            await batcher.close()
        elapsed = time.perf_counter() - first
    left = await stored(nc, stream)
    expected = 0 if batcher is not None else count
    if left != expected:
        raise SystemExit(f"{arm}: {left} messages in {stream}, expected {expected}")
    await nc.jetstream().delete_stream(stream)
    return count / elapsed


async def bench(url: str, args: Any) -> None:
    nc = await nats.connect(url)
    try:
        # the disk arm only for the server started here (it stores in the temporary folder)
        arms = [arm for arm in DELETES if args.own_server or not arm.startswith("disk")]
        deletes, apps = Rounds(arms), Rounds(list(APPS))
        for number in range(args.rounds):
            for arm in deletes.order(number):
                deletes.add(arm, await delete_rate(nc, arm, args.count, args.concurrency))
            for arm in apps.order(number):
                apps.add(arm, await app_rate(nc, url, arm, args.app_count, args.concurrency))
    finally:
        await nc.close()
    deletes.report(f"1. {args.count:,} JetStream messages deleted per arm and round, "
                   f"{args.concurrency} in flight where concurrent", "deletes/s",
                   DELETES)  # fmt: skip
    apps.report(f"2. FastStream JetStream pull consumer, {args.app_count:,} messages per run",
                "msg/s", APPS)  # fmt: skip
    pairs = [
        (deletes, "msgdel no_erase", "nats-py one by one", ">= 6",
         "NATS delete_many no_erase vs nats-py one by one"),
        (deletes, "msgdel erase", "nats-py one by one", ">= 1.8",
         "NATS delete_many erase vs nats-py one by one (erase vs erase)"),
        (deletes, "msgdel erase", "nats-py 100 in flight", None,
         "NATS delete_many erase vs nats-py delete_msg 100 in flight (same requests)"),
        (deletes, "nats-py 100 in flight", "nats-py one by one", None,
         "NATS nats-py delete_msg 100 in flight vs one by one (erase: what pipelining can gain)"),
        (deletes, "msgdel erase", "disk: fsync loop", None,
         "NATS delete_many erase vs the disk's fsync loop"),
        (deletes, "msgdel no_erase", "raw no_erase, 100 in flight", None,
         "NATS delete_many no_erase vs raw no_erase requests 100 in flight"),
        (apps, "batched middleware", "consume only", None,
         "NATS batched middleware vs consume-only app"),
        (apps, "batched middleware", "FastStream default", None,
         "NATS batched middleware vs FastStream default ack app"),
    ]  # fmt: skip
    print()
    pairs = [pair for pair in pairs if pair[2] in pair[0].values]
    for rounds, arm, baseline, goal, name in pairs:
        note = f"  (goal {goal}x)" if goal else ""
        print(f"  {name}: {rounds.ratio(arm, baseline)}{note}")
    for rounds, arm, baseline, goal, name in pairs:
        rounds.ratio(arm, baseline).figure(name, goal)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--count", type=int, help="deletes per arm and round (10,000)")
    options.add_argument("--app-count", type=int, help="messages per app run (3,000)")
    options.add_argument("--concurrency", type=int, default=100)
    options.add_argument(
        "--url", help="an existing NATS server with JetStream (default: start one)"
    )
    args = sizes(options.parse_args(), count=(10_000, 2_000), app_count=(3_000, 1_000),
                 rounds=(5, 3))  # fmt: skip
    args.own_server = not (args.url or os.environ.get("NATS_URL"))
    if args.url:
        asyncio.run(bench(args.url, args))
        return
    with nats_url() as url:
        asyncio.run(bench(url, args))


if __name__ == "__main__":
    main()
