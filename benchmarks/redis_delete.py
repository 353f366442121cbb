"""Redis: msgdel against FastStream's own delete and raw redis-py, on a real server.

Prints, in one run:
  1. a FastStream app deleting each message with ``await msgdel.delete(msg)`` vs FastStream's
     own ``await msg.delete()`` (messages/s and the ratio; goal >= 0.95);
  2. ``delete_many`` over stream entries in batches of 500 vs one awaited ``msgdel.delete``
     per entry (goal >= 40x) and vs a raw redis-py loop of 500-id XDEL commands (goal >= 0.8x),
     once with redis-py's pure-Python reply parser and once with hiredis if it is installed;
  3. a warm ``default_registry.resolve`` (goal under 1 microsecond).

    .venv/bin/python benchmarks/redis_delete.py [--entries 100000] [--app-messages 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from typing import Any

from _servers import redis_url
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage as StreamMessageParam
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel

BATCH = 500


async def app_rate(url: str, count: int, use_msgdel: bool) -> float:
    """Messages/s of a FastStream consumer-group app that deletes every message it handles."""
    broker = RedisBroker(url, logger=None)
    stream = f"app-{'msgdel' if use_msgdel else 'faststream'}-{time.monotonic_ns()}"
    done = asyncio.Event()
    handled = 0

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", max_records=100))
    async def handle(body: str, msg: StreamMessageParam) -> None:
        nonlocal handled
        if use_msgdel:
            await msgdel.delete(msg)
        else:
            await msg.delete()
        handled += 1
        if handled == count:
            done.set()

    async with broker:
        await broker.start()
        client: Any = broker._connection
        for start in range(0, count, BATCH):
            async with client.pipeline(transaction=False) as pipe:
                for i in range(start, min(start + BATCH, count)):
                    pipe.xadd(stream, {"__data__": f"order-{i}".encode()})
                await pipe.execute()
        began = time.perf_counter()
        await asyncio.wait_for(done.wait(), 300)
        elapsed = time.perf_counter() - began
        assert await client.xlen(stream) == 0, "every message should be gone"
    return count / elapsed


async def fill(client: Redis, stream: str, count: int) -> list[bytes]:
    ids: list[bytes] = []
    for start in range(0, count, BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, count)):
                pipe.xadd(stream, {"n": i})
            ids.extend(await pipe.execute())
    return ids


def messages(client: Redis, stream: str, ids: list[bytes]) -> list[RedisStreamMessage]:
    """Stream messages as FastStream's parser builds them for a consumer without a group."""
    return [
        RedisStreamMessage(
            raw_message={"type": "stream", "channel": stream, "message_ids": [i], "data": {}},
            body=b"",
            consumer=client,
            group=None,
        )
        for i in ids
    ]


async def bulk_rates(
    url: str, entries: int, single_entries: int, parser: type | None
) -> dict[str, float]:
    """Entries/s of msgdel.delete_many, raw XDEL and msgdel.delete one by one.

    The first two run interleaved, batch by batch on two streams of the same size, so a
    noisy machine slows both alike and the ratio between them stays meaningful.
    """
    client = Redis.from_url(url, **({"parser_class": parser} if parser else {}))
    rates: dict[str, float] = {}

    ours = messages(client, "bulk-msgdel", await fill(client, "bulk-msgdel", entries))
    raw_ids = await fill(client, "bulk-raw", entries)
    ours_seconds = raw_seconds = 0.0
    for start in range(0, entries, BATCH):
        began = time.perf_counter()
        await msgdel.delete_many(ours[start : start + BATCH])
        middle = time.perf_counter()
        await client.xdel("bulk-raw", *raw_ids[start : start + BATCH])
        ours_seconds += middle - began
        raw_seconds += time.perf_counter() - middle
    rates["msgdel.delete_many, 500 per call"] = entries / ours_seconds
    rates["raw redis-py XDEL, 500 ids per command"] = entries / raw_seconds
    assert await client.xlen("bulk-msgdel") == 0
    assert await client.xlen("bulk-raw") == 0

    ids = await fill(client, "bulk-single", single_entries)
    msgs = messages(client, "bulk-single", ids)
    began = time.perf_counter()
    for m in msgs:
        await msgdel.delete(m)
    rates["msgdel.delete, one awaited per entry"] = single_entries / (time.perf_counter() - began)

    await client.aclose()
    return rates


def parsers() -> dict[str, type | None]:
    """redis-py's reply parsers to measure: pure Python, and hiredis when it is installed."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP2Parser
    from redis.utils import HIREDIS_AVAILABLE

    found: dict[str, type | None] = {"pure-Python parser": _AsyncRESP2Parser}
    if HIREDIS_AVAILABLE:
        found["hiredis parser"] = _AsyncHiredisParser
    return found


def resolve_ns() -> float:
    msgdel.default_registry.resolve(RedisStreamMessage)
    runs = 1_000_000
    seconds = min(
        timeit.repeat(
            "resolve(t)",
            globals={"resolve": msgdel.default_registry.resolve, "t": RedisStreamMessage},
            number=runs,
            repeat=5,
        )
    )
    return seconds / runs * 1e9


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--single-entries", type=int, default=20_000)
    parser.add_argument("--app-messages", type=int, default=5_000)
    parser.add_argument("--redis", choices=["7", "8"], default="8")
    args = parser.parse_args()

    with redis_url(args.redis) as url:
        client = Redis.from_url(url)
        version = (await client.info("server"))["redis_version"]
        await client.aclose()
        print(f"Redis {version} at {url}")

        print("\n1. FastStream app, consumer group, delete every message in the handler")
        ours = await app_rate(url, args.app_messages, use_msgdel=True)
        theirs = await app_rate(url, args.app_messages, use_msgdel=False)
        print(f"   await msg.delete() (FastStream, XDEL) {theirs:10,.0f} msg/s")
        print(f"   await msgdel.delete(msg)              {ours:10,.0f} msg/s")
        print(f"   ratio msgdel / FastStream             {ours / theirs:10.2f}   (goal >= 0.95)")

        for number, (name, reply_parser) in enumerate(parsers().items(), start=2):
            print(f"\n{number}. {args.entries:,} stream entries, redis-py with its {name}")
            rates = await bulk_rates(url, args.entries, args.single_entries, reply_parser)
            for label, rate in rates.items():
                print(f"   {label:42} {rate:12,.0f} entries/s")
            many = rates["msgdel.delete_many, 500 per call"]
            single = rates["msgdel.delete, one awaited per entry"]
            raw = rates["raw redis-py XDEL, 500 ids per command"]
            print(f"   delete_many / one-by-one {many / single:30.1f}x  (goal >= 40x)")
            print(f"   delete_many / raw 500-id XDEL {many / raw:25.2f}x  (goal >= 0.8x)")

    number = 2 + len(parsers())
    print(f"\n{number}. warm default_registry.resolve: {resolve_ns():.0f} ns  (goal < 1000 ns)")


if __name__ == "__main__":
    asyncio.run(main())
