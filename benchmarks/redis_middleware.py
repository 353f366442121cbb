"""Redis: a FastStream stream consumer in a group, deleting through DeleteMiddleware or not.

Starts its own Redis 8.2 (the test bed's), then for each arm fills a fresh stream with
``N`` entries and consumes them in group ``g`` with the same handler (it takes the body only)
and the same reads (``polling_interval=10``, FastStream's default ``max_records``). What each
arm does at the broker, and what it leaves there (checked after every run):

- ``consume only``: ``AckPolicy.MANUAL``: no XACK, no deletion, the floor of what a consumer
  costs (leaves every entry, pending);
- ``FastStream default``: FastStream's XACK per message (leaves every entry, none pending);
- ``batched middleware``: ``DeleteMiddleware(batcher=Batcher())``: FastStream's XACK per
  message, and per batch one XACK + XDELEX (empty stream);
- ``leave_ack_to_batch``: the same with ``leave_ack_to_batch=True``: no XACK of FastStream's,
  one XACKDEL per batch (empty stream; until its batch is sent an entry stays pending);
- ``msg.delete()``: FastStream's own pattern, a handler taking ``msg: RedisStreamMessage``
  and awaiting ``msg.delete()``: XDEL per message, then FastStream's XACK (empty stream).

Timed from the first message handled until the last was (and ``batcher.close()`` returned).
The arms run interleaved, rotated round by round; it prints medians, ranges and the medians of
the per-round ratios, then figure lines.

    .venv/bin/python benchmarks/redis_middleware.py [N] [ROUNDS] [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis
from _common import Rounds, parser, sizes
from _servers import fill_stream_sync, redis_url
from faststream import AckPolicy
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.annotations import RedisStreamMessage

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware

LABELS = {
    "consume": "consume only (MANUAL: no XACK)",
    "default": "FastStream default (XACK, no deletion)",
    "batcher": "DeleteMiddleware(batcher=Batcher())",
    "leave_ack": "... leave_ack_to_batch=True",
    "msg.delete": "msg.delete() in the handler",
}
WHAT = {
    "consume": "XREADGROUP only; leaves every entry, pending",
    "default": "XREADGROUP, an XACK per message; leaves every entry, none pending",
    "batcher": "XREADGROUP, FastStream's XACK per message, one XACK + XDELEX per batch",
    "leave_ack": "XREADGROUP, one XACKDEL per batch",
    "msg.delete": "XREADGROUP, an XDEL per message, then FastStream's XACK per message",
}


async def run(url: str, stream: str, count: int, arm: str) -> float:
    """Messages/s of one app run over ``count`` entries of ``stream``."""
    batcher = Batcher() if arm in ("batcher", "leave_ack") else None
    middlewares = (
        [DeleteMiddleware(batcher=batcher, leave_ack_to_batch=arm == "leave_ack")]
        if batcher
        else []
    )
    broker = RedisBroker(url, middlewares=middlewares, logger=None)
    done = asyncio.Event()
    seen, first = 0, 0.0
    sub = StreamSub(stream, group="g", consumer="c", polling_interval=10)

    def tick() -> None:
        nonlocal seen, first
        if not seen:
            first = time.perf_counter()
        seen += 1
        if seen == count:
            done.set()

    handler: Callable[..., Any]
    if arm == "msg.delete":

        async def handler(body: str, msg: RedisStreamMessage) -> None:
            await msg.delete()
            tick()

    else:

        async def handler(body: str) -> None:
            tick()

    policy = AckPolicy.MANUAL if arm == "consume" else AckPolicy.REJECT_ON_ERROR
    broker.subscriber(stream=sub, ack_policy=policy)(handler)
    async with broker:
        await broker.start()
        await asyncio.wait_for(done.wait(), 600)
        if batcher is not None:
            await batcher.close()
        elapsed = time.perf_counter() - first
    return count / elapsed


def check(client: Any, arm: str, stream: str, count: int) -> None:
    """What the arm must leave at the broker: entries and pending entries."""
    left, pending = client.xlen(stream), client.xpending(stream, "g")["pending"]
    expected = {"consume": (count, count), "default": (count, 0)}.get(arm, (0, 0))
    if (left, pending) != expected:
        raise SystemExit(f"{arm}: {left} entries, {pending} pending in {stream}; "
                         f"expected {expected}")  # fmt: skip


def main() -> None:
    options = parser(__doc__)
    options.add_argument("count", type=int, nargs="?", help="messages per run (5,000)")
    options.add_argument("positional_rounds", type=int, nargs="?", metavar="ROUNDS")
    args = options.parse_args()
    args.rounds = args.rounds or args.positional_rounds
    args = sizes(args, count=(5_000, 2_000), rounds=(5, 3))
    runs = Rounds(list(LABELS))
    with redis_url("8") as url:
        client = redis.Redis.from_url(url)
        for number in range(args.rounds):
            for arm in runs.order(number):
                stream = f"bench-{arm}-{number}"
                fill_stream_sync(client, stream, args.count)
                runs.add(arm, asyncio.run(run(url, stream, args.count, arm)))
                check(client, arm, stream, args.count)
                client.delete(stream)
        client.close()
    runs.report(
        f"Redis 8.2, FastStream stream consumer in a group, {args.count:,} messages per run",
        "msg/s", WHAT, LABELS,
    )  # fmt: skip
    pairs = [
        ("batcher", "consume", ">= 0.9", "Redis batched middleware vs consume-only app"),
        ("batcher", "msg.delete", ">= 3", "Redis batched middleware vs msg.delete() in handler"),
        ("batcher", "default", None, "Redis batched middleware vs FastStream default XACK app"),
        ("leave_ack", "consume", ">= 0.9",
         "Redis batched middleware, leave_ack_to_batch=True, vs consume-only app"),
        ("leave_ack", "msg.delete", ">= 3",
         "Redis batched middleware, leave_ack_to_batch=True, vs msg.delete() in handler"),
        ("leave_ack", "batcher", None, "Redis leave_ack_to_batch vs batched middleware"),
        ("default", "consume", None, "Redis FastStream default XACK app vs consume-only app"),
    ]  # fmt: skip
    print()
    for arm, baseline, goal, name in pairs:
        print(f"  {name}: {runs.ratio(arm, baseline)}" + (f"  (goal {goal}x)" if goal else ""))
    for arm, baseline, goal, name in pairs:
        runs.ratio(arm, baseline).figure(name, goal)


if __name__ == "__main__":
    main()
