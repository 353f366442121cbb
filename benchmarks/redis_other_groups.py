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

    .venv/bin/python benchmarks/redis_other_groups.py [--entries 50000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _servers import redis_url
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter

BATCH = 500


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


async def one_round(url: str, entries: int, number: int) -> dict[str, float]:
    client = Redis.from_url(url)
    arms = {
        "default (keep for other groups)": RedisStreamAdapter(),
        "ignore_other_groups=True": RedisStreamAdapter(ignore_other_groups=True),
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
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    for version, label in (("8", "Redis 8.2"), ("7", "Redis 7")):
        with redis_url(version) as url:
            rounds = [await one_round(url, args.entries, n) for n in range(args.rounds)]
        print(f"\n{label}: {args.entries:,} entries per arm and round, {args.rounds} rounds")
        for name in rounds[0]:
            each = " ".join(f"{r[name]:,.0f}" for r in rounds)
            median = statistics.median(r[name] for r in rounds)
            print(f"  {name:<34} {median:>9,.0f} entries/s  ({each})")
        default, opt_out = rounds[0]
        ratios = [r[default] / r[opt_out] for r in rounds]
        print(
            f"  default / ignore_other_groups: {statistics.median(ratios):.2f}x "
            f"(rounds {min(ratios):.2f}-{max(ratios):.2f}; goal >= 0.90x on Redis 8.2)"
        )


if __name__ == "__main__":
    asyncio.run(main())
