"""Redis: what keeping entries for other consumer groups costs against deleting at once.

``RedisStreamAdapter()`` (the default) deletes an entry only once no other consumer group
still needs it: ``XACKDEL … ACKED`` on Redis 8.2, a server-side script per stream before.
``RedisStreamAdapter(ignore_other_groups=True)`` deletes at once (``DELREF`` on 8.2,
``MULTI XACK XDEL`` before). Both arms delete the same work at the broker: entries read in
group ``g`` and pending there, ``delete_many`` of 500 per call, on two streams of the same
size, batch by batch interleaved so machine noise hits both alike. A second group ``h`` has
read and acknowledged every entry already, so the default checks it and still deletes.
It prints entries/s per arm and server, the median ratio over rounds, and checks that both
streams end empty with nothing pending.

The batched-middleware pair runs a FastStream app whose broker has
``DeleteMiddleware(batcher=Batcher())`` (FastStream XACKs each entry, the batches delete), one
arm with each adapter, in alternating order round by round, on a fresh stream of
``--app-entries`` entries that group ``h`` has read and acknowledged; timed from the first
entry handled until ``batcher.close()`` returned, and checked empty with nothing pending.

It ends with figure lines (``_common.figure``): each ratio, with the goal on Redis 8.2.

    .venv/bin/python benchmarks/redis_other_groups.py [--entries 50000] [--app-entries 5000]
        [--rounds 5] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, describe, parser, sizes
from _servers import BATCH, fill_stream, read_group, redis_url, stream_messages
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.faststream import DeleteMiddleware

DEFAULT, OPT_OUT = "default (keep for other groups)", "ignore_other_groups=True"
WHAT = {
    DEFAULT: "delete_many: XACKDEL key g ACKED IDS 500 ids on 8.2, one EVALSHA per stream "
    "before (XACK, then XDEL once no group needs the entry); middleware: FastStream's XACK per "
    "message, then per batch XACK + XDELEX ACKED (8.2) or the script",
    OPT_OUT: "delete_many: XACKDEL key g DELREF IDS 500 ids on 8.2, MULTI XACK + an XDEL per "
    "entry EXEC before; middleware: FastStream's XACK per message, then per batch XDELEX DELREF "
    "(8.2) or MULTI XACK XDEL",
}


async def prepared(client: Redis, stream: str, count: int) -> list[RedisStreamMessage]:
    """``count`` entries read in group ``g`` (pending) and acknowledged by group ``h``."""
    await fill_stream(client, stream, count, group="g")
    await client.xgroup_create(stream, "h", id="0")
    ids = [i for i, _ in await read_group(client, stream, "g", count)]
    await acknowledged_by_h(client, stream, count)
    return stream_messages(client, stream, ids, "g")


async def acknowledged_by_h(client: Redis, stream: str, count: int) -> None:
    """Group ``h`` reads and acknowledges all ``count`` entries of ``stream``."""
    for _, entries in await client.xreadgroup("h", "c", {stream: ">"}, count=count):
        await client.xack(stream, "h", *[i for i, _ in entries])


async def app_rate(url: str, stream: str, count: int, adapter: RedisStreamAdapter) -> float:
    """Entries/s of a FastStream app deleting through DeleteMiddleware(batcher=Batcher())."""
    client = Redis.from_url(url)
    await fill_stream(client, stream, count, group="g")
    await client.xgroup_create(stream, "h", id="0")
    await acknowledged_by_h(client, stream, count)
    registry = msgdel.Registry(builtins=False)
    registry.register(RedisStreamMessage, adapter)
    batcher = msgdel.Batcher(registry)
    broker = RedisBroker(url, middlewares=[DeleteMiddleware(batcher=batcher)], logger=None)
    handled, first = 0, 0.0
    done = asyncio.Event()

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", polling_interval=10))
    async def handle(body: str) -> None:
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
    assert await client.xlen(stream) == 0, f"{stream}: entries left"
    assert (await client.xpending(stream, "g"))["pending"] == 0, f"{stream}: pending left"
    await client.aclose()
    return count / elapsed


async def app_round(url: str, entries: int, number: int) -> dict[str, float]:
    order = [(DEFAULT, RedisStreamAdapter()),
             (OPT_OUT, RedisStreamAdapter(ignore_other_groups=True))]  # fmt: skip
    rates = {}
    for name, adapter in order if number % 2 == 0 else order[::-1]:
        rates[name] = await app_rate(url, f"app-{number}-{len(rates)}", entries, adapter)
    return rates


def report(title: str, rounds: list[dict[str, float]], goal: str) -> Ratio:
    print(title)
    for name in (DEFAULT, OPT_OUT):
        each = " ".join(f"{r[name]:,.0f}" for r in rounds)
        median = statistics.median(r[name] for r in rounds)
        print(f"  {name:<34} {median:>9,.0f} entries/s  ({each})")
    ratios = [r[DEFAULT] / r[OPT_OUT] for r in rounds]
    print(f"  default / ignore_other_groups: {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}{goal})")  # fmt: skip
    return Ratio(ratios)


async def one_round(url: str, entries: int, number: int) -> dict[str, float]:
    client = Redis.from_url(url)
    arms = {
        DEFAULT: RedisStreamAdapter(),
        OPT_OUT: RedisStreamAdapter(ignore_other_groups=True),
    }
    registries = {}
    work = {}
    for name, adapter in arms.items():
        registry = msgdel.Registry(builtins=False)
        registry.register(RedisStreamMessage, adapter)
        registries[name] = registry
        work[name] = await prepared(client, f"groups-{number}-{len(work)}", entries)
    seconds = dict.fromkeys(arms, 0.0)
    for start in range(0, entries, BATCH):
        for name in arms:  # interleaved, batch by batch
            began = time.perf_counter()
            results = await msgdel.delete_many(
                work[name][start : start + BATCH], registry=registries[name]
            )
            seconds[name] += time.perf_counter() - began
            assert all(r.outcome is msgdel.Outcome.DELETED for r in results), name
    for index, name in enumerate(arms):
        stream = f"groups-{number}-{index}"
        assert await client.xlen(stream) == 0, f"{name}: entries left"
        assert (await client.xpending(stream, "g"))["pending"] == 0, f"{name}: pending left"
    await client.aclose()
    return {name: entries / s for name, s in seconds.items()}


async def main() -> None:
    options = parser(__doc__)
    options.add_argument("--entries", type=int, help="per arm and round (50,000)")
    options.add_argument("--app-entries", type=int, help="per app run (5,000)")
    args = sizes(options.parse_args(), entries=(50_000, 5_000), app_entries=(5_000, 1_000),
                 rounds=(5, 3))  # fmt: skip
    describe(WHAT)
    for version, label in (("8", "Redis 8.2"), ("7", "Redis 7")):
        many, app = [], []
        with redis_url(version) as url:
            for number in range(args.rounds):  # the two arm pairs alternate round by round
                many.append(await one_round(url, args.entries, number))
                app.append(await app_round(url, args.app_entries, number))
        goal = "; goal >= 0.90x" if version == "8" else ""
        ratio = report(f"\n{label}, delete_many of {BATCH}: {args.entries:,} entries per arm and "
                       f"round, {args.rounds} rounds", many, goal)  # fmt: skip
        ratio.figure(f"{label} other groups: delete_many default vs ignore_other_groups",
                     ">= 0.9" if version == "8" else None)  # fmt: skip
        ratio = report(f"{label}, batched middleware (DeleteMiddleware(batcher=Batcher())): "
                       f"{args.app_entries:,} entries per arm and round, {args.rounds} rounds",
                       app, goal)  # fmt: skip
        ratio.figure(f"{label} other groups: batched middleware default vs ignore_other_groups",
                     ">= 0.9" if version == "8" else None)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
