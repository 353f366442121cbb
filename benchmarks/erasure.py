"""Redis: erasing one person's entries from a stream of 1,000,000 (``msgdel.erasure.erase``).

A stream of ``--entries`` entries is filled once, each with ``user=p<i mod people>`` (so every
person has ``entries / people`` entries, spread evenly over the whole stream) and a 64-byte
body; a consumer group has read them all, so every entry is pending there. Each arm is a page
size (``XRANGE … COUNT``); each round, each arm erases a different person, for real, with
batches of 500: the whole stream is scanned every time. Arms run interleaved over rounds.
It prints the scan rate (entries looked at per second) per arm, median, range and rounds,
then one more erasure per arm under ``tracemalloc`` for the peak of Python memory it
allocated, and the process's peak RSS; and checks at the broker that every erased person's
entries are gone and the stream lost only those.

    .venv/bin/python benchmarks/erasure.py [--entries 1000000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Rounds, figure, interleaved, parser, sizes
from _servers import redis_url
from redis.asyncio import Redis

from msgdel.erasure import RedisStreamField, erase

STREAM = "people"
PEOPLE = 10_000
ARMS = {"page 100": 100, "page 1000": 1000, "page 10000": 10_000}


async def fill(client: Redis, entries: int) -> None:
    """The stream, pipelined in chunks, and a group that has read every entry."""
    await client.delete(STREAM)
    body = "x" * 64
    chunk = 10_000
    for start in range(0, entries, chunk):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + chunk, entries)):
                pipe.xadd(STREAM, {"user": f"p{i % PEOPLE}", "body": body})
            await pipe.execute()
    await client.xgroup_create(STREAM, "g", id="0")
    read = 0
    while read < entries:  # server-side, so the entries do not travel to this process
        read += int(await client.eval(_READ_ALL, 1, STREAM, chunk))


_READ_ALL = """
local got = redis.call('XREADGROUP', 'GROUP', 'g', 'c', 'COUNT', ARGV[1], 'STREAMS', KEYS[1], '>')
if not got then return 0 end
return #got[1][2]
"""


async def main() -> None:
    args = sizes(_args(), entries=(1_000_000, 100_000), rounds=(3, 2))
    per_person = args.entries // PEOPLE
    with redis_url() as url:
        client = Redis.from_url(url)
        began = time.perf_counter()
        await fill(client, args.entries)
        print(f"filled {args.entries:,} entries ({per_person} per person, {PEOPLE:,} people) "
              f"in {time.perf_counter() - began:.1f}s")  # fmt: skip
        filled_rss = _rss()
        rounds = Rounds(list(ARMS))
        person = iter(range(PEOPLE))
        erased = 0
        for _, arm in interleaved(rounds, args.rounds):
            target = RedisStreamField(STREAM, "user", f"p{next(person)}")
            began = time.perf_counter()
            (report,) = await erase(client, [target], page_size=ARMS[arm], batch_size=500)
            seconds = time.perf_counter() - began
            assert report.removed == per_person, report
            erased += report.removed
            rounds.add(arm, report.scanned / seconds)
        rounds.report("scan rate of one erasure", "entries/s",
                      what={a: f"XRANGE COUNT {n}, one XDELEX DELREF per 500 matches"
                            for a, n in ARMS.items()})  # fmt: skip
        print("\npeak Python memory of one erasure (tracemalloc), per arm")
        for arm, page in ARMS.items():
            target = RedisStreamField(STREAM, "user", f"p{next(person)}")
            tracemalloc.start()
            (report,) = await erase(client, [target], page_size=page, batch_size=500)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            erased += report.removed
            print(f"  {arm:<11} {peak / 2**20:8.2f} MiB")
            figure(f"erasure peak Python memory, {arm}", round(peak / 2**20, 2), None, "MiB")
        left = await client.xlen(STREAM)
        pending = (await client.xpending(STREAM, "g"))["pending"]
        await client.aclose()
    rss = _rss()
    print(f"\npeak RSS of the process: {filled_rss:.0f} MiB after filling the stream, "
          f"{rss:.0f} MiB after every erasure")  # fmt: skip
    figure("erasure peak RSS", round(rss), None, "MiB", note=f"{filled_rss:.0f} MiB before")
    print(f"stream left with {left:,} entries ({args.entries - erased:,} expected), "
          f"{pending:,} pending in group g")  # fmt: skip
    assert left == pending == args.entries - erased
    for arm in ARMS:
        low, high = min(rounds.values[arm]), max(rounds.values[arm])
        figure(f"erasure scan rate, {arm}", round(rounds.median(arm)), None, "entries/s",
               low=round(low), high=round(high))  # fmt: skip


def _rss() -> float:
    """The process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _args() -> argparse.Namespace:
    p = parser(__doc__)
    p.add_argument("--entries", type=int, help="entries in the stream")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main())
