"""Redis: msgdel against the raw command it sends, FastStream's own delete, and one by one.

Starts its own Redis 8.2 (XDELEX and XACKDEL need it) and prints, in one run:

1. A FastStream app in a consumer group deleting each message in its handler: ``await
   msgdel.delete(msg)`` (one XACKDEL per message: acknowledged and deleted at once) against
   FastStream's own ``await msg.delete()`` (an XDEL, then FastStream's XACK). Interleaved runs.
2. For each redis-py reply parser (hiredis, which redis-py uses when it is installed, and
   redis-py's own pure-Python parser: RESP3, redis-py 8's default protocol), ``delete_many``
   of 500 messages per call against the same command sent raw with the same ids on the same
   client, its reply decoded at once into a list of ints:

   - no group: msgdel sends ``XDELEX key ACKED IDS 500 …``; the raw arm sends exactly that;
   - group ``g`` (entries read and pending): msgdel sends ``XACKDEL key g ACKED IDS 500 …``
     inside the script that also measures what it deleted (``EVALSHA``, see
     ``msgdel.adapters.redis``); the raw arm sends exactly that script, and a bare arm the
     ``XACKDEL`` alone (what the check costs).

   Each arm has a stream of its own holding entries with the same ids (the second stream is
   filled with the first one's ids). Calls interleave call by call, their order alternating,
   and each round's rate comes from its median call. Also printed: a raw 500-id XDEL (one
   count, not a code per entry: not the same work), and ``msgdel.delete`` awaited once per
   entry.

   msgdel's own CPU per entry: the server runs in its own process, so this process's CPU time
   (``time.process_time``) around a call is the client's work only. msgdel's own is the CPU
   of a ``delete_many`` of 500 minus that of the raw same command of 500 (encoding, parsing
   and decoding its reply), per pair of neighbouring calls, divided by 500: median over the
   calls of a round, then over rounds.
3. A warm ``default_registry.resolve`` (nanoseconds).

Every arm checks the broker afterwards: the streams are empty and nothing is pending.

    .venv/bin/python benchmarks/redis_delete.py [--entries 20000] [--single-entries 2000]
        [--app-messages 2000] [--rounds 5] [--quick]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Ratio, Rounds, figure, parser, sizes
from _servers import BATCH, fill_stream, read_group, redis_url, stream_messages
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage as StreamMessageParam
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis

import msgdel
from msgdel.adapters.redis import _COUNTED_XACKDEL  # the script msgdel sends, sent raw


# -- 1. the FastStream app ----------------------------------------------------------------------
async def app_rate(url: str, count: int, use_msgdel: bool, number: int) -> float:
    """Messages/s of a FastStream consumer-group app that deletes every message it handles,
    from the first message handled to the last; checks the stream ends empty, none pending."""
    broker = RedisBroker(url, logger=None)
    stream = f"app-{'msgdel' if use_msgdel else 'faststream'}-{number}"
    done = asyncio.Event()
    handled, first = 0, 0.0

    @broker.subscriber(stream=StreamSub(stream, group="g", consumer="c", max_records=100))
    async def handle(body: str, msg: StreamMessageParam) -> None:
        nonlocal handled, first
        if not handled:
            first = time.perf_counter()
        if use_msgdel:
            await msgdel.delete(msg)
        else:
            await msg.delete()
        handled += 1
        if handled == count:
            done.set()

    client = Redis.from_url(url)
    await client.xgroup_create(stream, "g", id="0", mkstream=True)
    await fill_stream(client, stream, count)
    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - first
    await assert_empty(client, stream, group="g")
    await client.aclose()
    return count / elapsed


# -- 2. delete_many against the raw command -----------------------------------------------------
async def read_all(client: Redis, stream: str, count: int) -> None:
    """Read every entry of ``stream`` in group ``g``: all pending there."""
    await client.xgroup_create(stream, "g", id="0")
    await read_group(client, stream, "g", count)


async def assert_empty(client: Redis, stream: str, group: str | None = None) -> None:
    left = await client.xlen(stream)
    pending = (await client.xpending(stream, group))["pending"] if group else 0
    assert (left, pending) == (0, 0), f"{stream}: {left} entries, {pending} pending left"


Call = Callable[[int], Awaitable[Any]]
"""One call of an arm: deletes the batch that starts at the given position."""


async def bulk_round(client: Redis, entries: int, number: int) -> dict[str, float]:
    """One round: every bulk arm over ``entries`` entries; rates (from each arm's median
    call) and msgdel's own CPU per entry for each command."""
    streams = {arm: f"bulk-{number}-{arm}" for arm in BULK}
    ids = await fill_stream(client, streams["msgdel XDELEX"], entries)
    for arm in BULK:
        if arm != "msgdel XDELEX":
            await fill_stream(
                client, streams[arm], entries, ids=ids
            )  # the same ids in every stream
    grouped = [arm for arm in BULK if "XACKDEL" in arm]
    for arm in grouped:
        await read_all(client, streams[arm], entries)
    ours = {
        arm: stream_messages(client, streams[arm], ids, "g" if arm in grouped else None)
        for arm in ("msgdel XDELEX", "msgdel XACKDEL")
    }

    async def many(arm: str, start: int) -> None:
        results = await msgdel.delete_many(ours[arm][start : start + BATCH])
        assert all(r.outcome is msgdel.Outcome.DELETED for r in results), results[:3]

    def raw(command: str, arm: str) -> Call:
        stream = streams[arm]

        async def call(start: int) -> None:
            batch = ids[start : start + BATCH]
            head = (stream, "g") if command == "XACKDEL" else (stream,)
            reply = await client.execute_command(command, *head, "ACKED", "IDS", len(batch), *batch)
            codes = [int(code) for code in reply]  # decoded at once, as msgdel does
            assert codes.count(1) == len(batch), codes[:3]

        return call

    sha = await client.script_load(_COUNTED_XACKDEL)

    async def scripted(start: int) -> None:
        batch = ids[start : start + BATCH]
        stream = streams["raw scripted XACKDEL"]
        _, _, reply = await client.execute_command("EVALSHA", sha, 1, stream, "g", "ACKED", *batch)
        codes = [int(code) for code in reply]
        assert codes.count(1) == len(batch), codes[:3]

    async def xdel(start: int) -> None:
        assert await client.xdel(streams["raw XDEL"], *ids[start : start + BATCH]) > 0

    calls: dict[str, Call] = {
        "msgdel XDELEX": lambda start: many("msgdel XDELEX", start),
        "raw XDELEX": raw("XDELEX", "raw XDELEX"),
        "msgdel XACKDEL": lambda start: many("msgdel XACKDEL", start),
        "raw scripted XACKDEL": scripted,
        "bare XACKDEL": raw("XACKDEL", "bare XACKDEL"),
        "raw XDEL": xdel,
    }
    wall: dict[str, list[float]] = {arm: [] for arm in BULK}
    cpu: dict[str, list[float]] = {arm: [] for arm in BULK}
    order = list(BULK)
    for start in range(0, entries, BATCH):
        for arm in order:  # interleaved call by call
            began, began_cpu = time.perf_counter(), time.process_time()
            await calls[arm](start)
            cpu[arm].append(time.process_time() - began_cpu)
            wall[arm].append(time.perf_counter() - began)
        order.reverse()  # neither always first
    for arm, stream in streams.items():
        await assert_empty(client, stream, "g" if arm in grouped else None)
        await client.delete(stream)
    rates = {arm: BATCH / statistics.median(seconds) for arm, seconds in wall.items()}
    for command, anchor in ANCHORS.items():
        own = [a - b for a, b in zip(cpu[f"msgdel {command}"], cpu[anchor])]
        rates[f"own CPU {command}"] = statistics.median(own) / BATCH * 1e6
        rates[f"raw CPU {command}"] = statistics.median(cpu[anchor]) / BATCH * 1e6
    return rates


ANCHORS = {"XDELEX": "raw XDELEX", "XACKDEL": "raw scripted XACKDEL"}
"""The raw arm sending exactly what msgdel sends, for each command: msgdel's own CPU is the
difference."""

BULK = {
    "msgdel XDELEX": "msgdel.delete_many, no group: XDELEX key ACKED IDS 500 ids",
    "raw XDELEX": "execute_command('XDELEX', key, 'ACKED', 'IDS', 500, *ids), codes as ints",
    "msgdel XACKDEL": "msgdel.delete_many, group g: XACKDEL key g ACKED IDS 500 ids",
    "raw scripted XACKDEL": "execute_command('EVALSHA', <msgdel's script>, 1, key, 'g', "
    "'ACKED', *ids): XLEN, the first entry, XACKDEL, XLEN; codes as ints",
    "bare XACKDEL": "execute_command('XACKDEL', key, 'g', 'ACKED', 'IDS', 500, *ids), as ints "
    "(not what msgdel sends: it cannot tell an entry gone while pending)",
    "raw XDEL": "xdel(key, *ids): one count for all 500 (not the same work)",
}


async def single_rate(client: Redis, count: int, number: int) -> float:
    """Entries/s of ``msgdel.delete`` awaited once per entry (XDELEX of one id each)."""
    stream = f"single-{number}"
    ours = stream_messages(client, stream, await fill_stream(client, stream, count))
    began = time.perf_counter()
    for message in ours:
        await msgdel.delete(message)
    elapsed = time.perf_counter() - began
    await assert_empty(client, stream)
    return count / elapsed


async def parser_of(client: Redis) -> str:
    """The reply parser and protocol a connection of ``client`` uses."""
    connection: Any = await client.connection_pool.get_connection()
    try:
        return f"{type(connection._parser).__name__}, RESP{connection.protocol}"
    finally:
        await client.connection_pool.release(connection)


def parsers() -> dict[str, type | None]:
    """redis-py's reply parsers: hiredis when installed (the default then), and its own."""
    from redis._parsers import _AsyncHiredisParser, _AsyncRESP3Parser
    from redis.utils import HIREDIS_AVAILABLE

    found: dict[str, type | None] = {}
    if HIREDIS_AVAILABLE:
        found["hiredis"] = _AsyncHiredisParser
    found["pure-Python"] = _AsyncRESP3Parser
    return found


async def bulk(url: str, args: Any, name: str, reply_parser: type | None) -> None:
    client = Redis.from_url(url, parser_class=reply_parser)
    print(f"\n2. delete_many against the raw command, redis-py with {await parser_of(client)}",
          flush=True)  # fmt: skip
    arms = [*BULK, "msgdel.delete one by one"]
    rounds = Rounds(arms)
    cpu = Rounds(["own CPU XDELEX", "own CPU XACKDEL", "raw CPU XDELEX", "raw CPU XACKDEL"])
    for number in range(args.rounds):
        rates = await bulk_round(client, args.entries, number)
        for arm in BULK:
            rounds.add(arm, rates[arm])
        for arm in cpu.arms:
            cpu.add(arm, rates[arm])
        rounds.add("msgdel.delete one by one", await single_rate(client, args.single, number))
    await client.aclose()
    rounds.report(
        f"   {args.entries:,} entries per arm and round, 500 per call ({name} parser)",
        "entries/s",
        BULK | {"msgdel.delete one by one": "one XDELEX of one id per awaited call "
                f"({args.single:,} entries per round)"},
    )  # fmt: skip
    cpu.report("   CPU of this process per entry (the server's is not counted)", "us", digits=2)
    tag = "" if name == "hiredis" else f" ({name} parser)"
    goal = (lambda text: text) if name == "hiredis" else (lambda text: None)
    ratios = [
        (rounds.ratio("msgdel XDELEX", "raw XDELEX"), ">= 0.85",
         f"Redis delete_many vs raw XDELEX (no group){tag}"),
        (rounds.ratio("msgdel XACKDEL", "raw scripted XACKDEL"), ">= 0.85",
         f"Redis delete_many vs raw scripted XACKDEL (group, the command msgdel sends){tag}"),
        (rounds.ratio("msgdel XACKDEL", "bare XACKDEL"), None,
         f"Redis delete_many vs bare XACKDEL (group, without the script's check){tag}"),
        (rounds.ratio("msgdel XDELEX", "msgdel.delete one by one"), ">= 40",
         f"Redis delete_many vs msgdel.delete one by one{tag}"),
        (rounds.ratio("msgdel XDELEX", "raw XDEL"), None,
         f"Redis delete_many vs raw XDEL (one count, not the same work){tag}"),
    ]  # fmt: skip
    for ratio, target, label in ratios:
        print(f"   {label}: {ratio}" + (f"  (goal {target}x)" if goal(target) else ""))
    for command in ("XDELEX", "XACKDEL"):
        own = Ratio(cpu.values[f"own CPU {command}"])
        print(f"   msgdel's own CPU per entry, {command}: {own.median:.2f} us "
              f"(rounds {own.low:.2f}-{own.high:.2f})"
              + ("  (goal <= 0.5 us)" if goal("x") else ""))  # fmt: skip
    for ratio, target, label in ratios:
        ratio.figure(label, goal(target))
    for command in ("XDELEX", "XACKDEL"):
        own = Ratio(cpu.values[f"own CPU {command}"])
        figure(
            f"msgdel's own CPU per Redis entry, delete_many ({command}){tag}",
            own.median, goal("<= 0.5"), "us", low=own.low, high=own.high,
            note="process CPU of delete_many of 500 minus the raw same command, / 500",
        )  # fmt: skip


# -- 3. resolve ---------------------------------------------------------------------------------
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
    options = parser(__doc__)
    options.add_argument("--entries", type=int, help="per bulk arm and round (20,000)")
    options.add_argument("--single-entries", dest="single", type=int, help="one by one (2,000)")
    options.add_argument("--app-messages", dest="app", type=int, help="per app run (2,000)")
    args = sizes(
        options.parse_args(),
        entries=(20_000, 5_000), single=(2_000, 500), app=(2_000, 500), rounds=(5, 3),
    )  # fmt: skip

    with redis_url("8") as url:
        client = Redis.from_url(url)
        version = (await client.info("server"))["redis_version"]
        await client.aclose()
        print(f"Redis {version}, {args.rounds} rounds", flush=True)

        apps = Rounds(["msg.delete()", "msgdel.delete(msg)"])
        for number in range(args.rounds):
            for arm in apps.order(number):
                apps.add(arm, await app_rate(url, args.app, arm != "msg.delete()", number))
        apps.report(
            f"1. FastStream app, consumer group, delete every message in the handler, "
            f"{args.app:,} messages per run",
            "msg/s",
            {"msg.delete()": "XDEL per message, then FastStream's XACK",
             "msgdel.delete(msg)": "XACKDEL per message (FastStream sends no XACK)"},
        )  # fmt: skip
        app_ratio = apps.ratio("msgdel.delete(msg)", "msg.delete()")
        print(f"   msgdel.delete / msg.delete(): {app_ratio}  (goal >= 0.95x)")

        for name, reply_parser in parsers().items():
            await bulk(url, args, name, reply_parser)

    resolve = resolve_ns()
    print(f"\n3. warm default_registry.resolve: {resolve:.0f} ns  (goal < 1000 ns)")
    app_ratio.figure("Redis app: msgdel.delete(msg) vs FastStream msg.delete()", ">= 0.95")
    figure("warm default_registry.resolve", resolve, "<= 1000", "ns")


if __name__ == "__main__":
    asyncio.run(main())
