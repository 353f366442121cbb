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

    .venv/bin/python benchmarks/redis_other_groups.py [--entries 50000] [--app-entries 5000]
        [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _servers import redis_url
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.faststream import DeleteMiddleware

BATCH = 500
DEFAULT, OPT_OUT = "default (keep for other groups)", "ignore_other_groups=True"


async def prepared(client: Redis, stream: str, count: int) -> list[RedisStreamMessage]:
    """``count`` entries read in group ``g`` (pending) and acknowledged by group ``h``."""
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    await client.xgroup_create(stream, "h", id="0")
    for start in range(0, count, BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, count)):
                pipe.xadd(stream, {"n": i})
            await pipe.execute()
    ids: list[bytes] = []
    while len(ids) < count:
        for _, entries in await client.xreadgroup("g", "c", {stream: ">"}, count=5000):
            ids.extend(i for i, _ in entries)
    for _, entries in await client.xreadgroup("h", "c", {stream: ">"}, count=count):
        await client.xack(stream, "h", *[i for i, _ in entries])
    return [
        RedisStreamMessage(
            raw_message={"type": "stream", "channel": stream, "message_ids": [i], "data": {}},
            body=b"",
            consumer=client,
            group="g",
        )
        for i in ids
    ]


async def app_rate(url: str, stream: str, count: int, adapter: RedisStreamAdapter) -> float:
    """Entries/s of a FastStream app deleting through DeleteMiddleware(batcher=Batcher())."""
    client = Redis.from_url(url)
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    await client.xgroup_create(stream, "h", id="0")
    for start in range(0, count, BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, count)):
                pipe.xadd(stream, {"__data__": f"m{i}"})
            await pipe.execute()
    for _, entries in await client.xreadgroup("h", "c", {stream: ">"}, count=count):
        await client.xack(stream, "h", *[i for i, _ in entries])
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


def report(title: str, rounds: list[dict[str, float]], goal: str) -> None:
    print(title)
    for name in (DEFAULT, OPT_OUT):
        each = " ".join(f"{r[name]:,.0f}" for r in rounds)
        median = statistics.median(r[name] for r in rounds)
        print(f"  {name:<34} {median:>9,.0f} entries/s  ({each})")
    ratios = [r[DEFAULT] / r[OPT_OUT] for r in rounds]
    print(f"  default / ignore_other_groups: {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}-{max(ratios):.2f}{goal})")  # fmt: skip


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
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--app-entries", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for version, label in (("8", "Redis 8.2"), ("7", "Redis 7")):
        many, app = [], []
        with redis_url(version) as url:
            for number in range(args.rounds):  # the two arm pairs alternate round by round
                many.append(await one_round(url, args.entries, number))
                app.append(await app_round(url, args.app_entries, number))
        goal = "; goal >= 0.90x" if version == "8" else ""
        report(f"\n{label}, delete_many of {BATCH}: {args.entries:,} entries per arm and round, "
               f"{args.rounds} rounds", many, goal)  # fmt: skip
        report(f"{label}, batched middleware (DeleteMiddleware(batcher=Batcher())): "
               f"{args.app_entries:,} entries per arm and round, {args.rounds} rounds",
               app, goal)  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
