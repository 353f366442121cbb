"""Redis: what ``RedisStreamAdapter(match_fields=True)`` costs against the default.

``match_fields=True`` proves each entry is still the consumed message before deleting it: a
server-side script per stream reads each entry (``XRANGE id id``), compares the SHA-1 of its
fields with the digest of the fields the message was consumed with, and acknowledges and
deletes only the matching ones. The default deletes by id (``XACKDEL … ACKED`` on Redis 8.2, a
script before). Both arms delete the same work: entries read in group ``g`` and pending there,
``delete_many`` of 500 per call, on two streams of the same size, batch by batch interleaved
so machine noise hits both alike, for each body size. It prints entries/s per arm, the
median ratio over rounds with its range, and checks that both streams end empty with
nothing pending.

It ends with figure lines (``_common.figure``): each ratio, for information (no goal).

    .venv/bin/python benchmarks/redis_match_fields.py [--entries 20000] [--rounds 5]
                                                      [--sizes 16,1024] [--quick]
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
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter

ARMS = {
    "default (delete by id)": RedisStreamAdapter(),
    "match_fields=True": RedisStreamAdapter(match_fields=True),
}


async def prepared(client: Redis, stream: str, count: int, size: int) -> list[RedisStreamMessage]:
    """``count`` entries with a ``size``-byte body, read in group ``g`` (pending), as
    FastStream's messages holding the fields they were read with."""
    await fill_stream(
        client, stream, count, fields=lambda i: {"__data__": f"{i:0{size}d}"[-size:]}, group="g"
    )
    read = await read_group(client, stream, "g", count)
    return stream_messages(client, stream, [i for i, _ in read], "g", [d for _, d in read])


async def one_round(url: str, entries: int, size: int, number: int) -> dict[str, float]:
    client = Redis.from_url(url)
    registries, work, streams = {}, {}, {}
    for index, (name, adapter) in enumerate(ARMS.items()):
        registry = msgdel.Registry(builtins=False)
        registry.register(RedisStreamMessage, adapter)
        registries[name] = registry
        streams[name] = f"match-{size}-{number}-{index}"
        work[name] = await prepared(client, streams[name], entries, size)
    seconds = dict.fromkeys(ARMS, 0.0)
    for start in range(0, entries, BATCH):
        for name in ARMS:  # interleaved, batch by batch
            began = time.perf_counter()
            results = await msgdel.delete_many(
                work[name][start : start + BATCH], registry=registries[name]
            )
            seconds[name] += time.perf_counter() - began
            assert all(r.outcome is msgdel.Outcome.DELETED for r in results), name
    for name, stream in streams.items():
        assert await client.xlen(stream) == 0, f"{name}: entries left"
        assert (await client.xpending(stream, "g"))["pending"] == 0, f"{name}: pending left"
    await client.aclose()
    return {name: entries / s for name, s in seconds.items()}


async def main() -> None:
    options = parser(__doc__)
    options.add_argument("--entries", type=int, help="per arm and round (20,000)")
    options.add_argument("--sizes", dest="body_sizes", default="16,1024",
                         help="body sizes in bytes, comma-separated")  # fmt: skip
    args = sizes(options.parse_args(), entries=(20_000, 5_000), rounds=(5, 3))
    body_sizes = [int(s) for s in args.body_sizes.split(",")]
    describe({
        "default (delete by id)": "XACKDEL key g ACKED IDS 500 ids (8.2), one EVALSHA per "
        "stream before",
        "match_fields=True": "one EVALSHA per stream: XRANGE each id, compare the fields' "
        "SHA-1, XACK + XDELEX (8.2) or XDEL the matching ones",
    })  # fmt: skip
    for version, label in (("8", "Redis 8.2"), ("7", "Redis 7")):
        with redis_url(version) as url:
            for size in body_sizes:
                rounds = [await one_round(url, args.entries, size, n) for n in range(args.rounds)]
                print(
                    f"\n{label}, {size}-byte bodies: delete_many of {BATCH}, "
                    f"{args.entries:,} entries per arm and round, {args.rounds} rounds"
                )
                for name in ARMS:
                    each = " ".join(f"{r[name]:,.0f}" for r in rounds)
                    median = statistics.median(r[name] for r in rounds)
                    print(f"  {name:<24} {median:>9,.0f} entries/s  ({each})")
                default, matched = ARMS
                ratio = Ratio([r[matched] / r[default] for r in rounds])
                print(f"  match_fields / default: {ratio}")
                ratio.figure(f"{label} match_fields vs default, {size}-byte bodies", None)


if __name__ == "__main__":
    asyncio.run(main())
