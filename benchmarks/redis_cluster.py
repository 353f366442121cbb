"""Redis Cluster: ``delete_many`` over streams spread across three masters vs the same on one node.

Starts the test bed's single Redis and its three-master cluster (a replica each), both Redis 8.2
by default (``--redis 7`` for Debian's Redis 7: the script path). Each round, each arm (rotated
round by round) fills ``--streams`` fresh streams holding ``--entries`` entries in all, in
consumer group ``g``, reads them all in the group (pending there, untimed), builds the
FastStream ``RedisStreamMessage`` of each entry bound to the arm's client (a
``redis.asyncio.Redis``, or the ``RedisCluster`` FastStream's ``RedisClusterBroker`` uses), and
times ``msgdel.delete_many`` of them ``--per-call`` at a time, the streams round robin, so every
call holds entries of every stream (and so of every master). Every stream must be empty and
nothing pending afterwards.

Round trips per call are counted afterwards in one untimed call per arm (the client's sends to
a server: ``ClusterNode.execute_pipeline`` and ``execute_command`` on the cluster, pipelines and
commands on the single node), beside the number of nodes holding its targets.

    .venv/bin/python benchmarks/redis_cluster.py [--entries 100000] [--streams 30]
        [--per-call 500] [--rounds 3] [--redis 8] [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Rounds, figure, interleaved, parser, sizes, stop_on_sigterm
from _servers import fill_stream, read_group, stream_messages
from faststream.redis.message import RedisStreamMessage
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, RedisCluster

import msgdel
from msgdel.adapters.redis import RedisStreamAdapter
from tests.testbed.redis import redis7, redis8
from tests.testbed.redis_cluster import redis7_cluster, redis8_cluster

stop_on_sigterm()

ARMS = {
    "single node": "one round trip per call: one XACKDEL per stream, in its script (a script "
    "per stream on 7)",
    "cluster": "one round trip per master holding targets, the masters concurrently: one "
    "XACKDEL per stream, in its script (a script per stream on 7), no MULTI",
}

_names = itertools.count()


async def prepared(client: Any, streams: int, entries: int, per_call: int) -> list[list[Any]]:
    """Fresh streams holding ``entries`` entries in all, read in group ``g``; their messages
    bound to ``client``, in calls of ``per_call``, the streams round robin."""
    names = [f"bench{next(_names)}-{i}" for i in range(streams)]
    each = [entries // streams + (i < entries % streams) for i in range(streams)]
    by_stream = []
    for name, count in zip(names, each):
        await fill_stream(client, name, count, group="g")
        read = await read_group(client, name, "g", count)
        by_stream.append(stream_messages(client, name, [i for i, _ in read], group="g"))
    mixed = [m for row in itertools.zip_longest(*by_stream) for m in row if m is not None]
    return [mixed[i : i + per_call] for i in range(0, len(mixed), per_call)]


async def delete_all(calls: list[list[Any]], registry: msgdel.Registry) -> float:
    """Seconds to delete every call's messages; every outcome must be DELETED."""
    began = time.perf_counter()
    for messages in calls:
        results = await msgdel.delete_many(messages, registry=registry)
        if any(r.outcome is not msgdel.Outcome.DELETED for r in results):
            raise SystemExit(f"not every entry was deleted: {results[:3]}")
    return time.perf_counter() - began


async def check_empty(client: Any, calls: list[list[Any]]) -> None:
    streams = {m.raw_message["channel"] for call in calls for m in call}
    for stream in streams:
        left = await client.xlen(stream)
        pending = (await client.xpending(stream, "g"))["pending"]
        if left or pending:
            raise SystemExit(f"{stream} holds {left} entries, {pending} pending")
        await client.delete(stream)


@contextlib.contextmanager
def counting() -> Iterator[list[int]]:
    """Count the client's sends to a server while inside (one list item: the count)."""
    count = [0]
    patched = []
    for owner, name in (
        (ClusterNode, "execute_pipeline"),
        (ClusterNode, "execute_command"),
        (Pipeline, "execute"),
        (Redis, "execute_command"),
    ):
        original = getattr(owner, name)

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            count[0] += 1
            return _original(*args, **kwargs)

        setattr(owner, name, counted)
        patched.append((owner, name, original))
    try:
        yield count
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)


async def main() -> None:
    args = parser(__doc__)
    args.add_argument("--entries", type=int)
    args.add_argument("--streams", type=int, default=30)
    args.add_argument("--per-call", type=int, default=500)
    args.add_argument("--redis", choices=["7", "8"], default="8")
    options = sizes(args.parse_args(), entries=(100_000, 10_000), rounds=(3, 1))
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, RedisStreamAdapter())
    with tempfile.TemporaryDirectory() as workdir:
        single = (redis8 if options.redis == "8" else redis7)(Path(workdir) / "single")
        cluster = (redis8_cluster if options.redis == "8" else redis7_cluster)(
            Path(workdir) / "cluster"
        )
        try:
            single.start()
            cluster.start()
            clients = {
                "single node": Redis.from_url(single.url),
                "cluster": RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port),
            }
            await clients["cluster"].initialize()
            rounds = Rounds(list(ARMS))
            for _, arm in interleaved(rounds, options.rounds):
                client = clients[arm]
                calls = await prepared(client, options.streams, options.entries, options.per_call)
                seconds = await delete_all(calls, registry)
                await check_empty(client, calls)
                rounds.add(arm, options.entries / seconds)
            trips = {}
            for arm, client in clients.items():
                (call,) = await prepared(
                    client, options.streams, options.per_call, options.per_call
                )
                await msgdel.delete_many(call, registry=registry)  # warm: the probe is done
                (call,) = await prepared(
                    client, options.streams, options.per_call, options.per_call
                )
                with counting() as count:
                    await msgdel.delete_many(call, registry=registry)
                await check_empty(client, [call])
                trips[arm] = count[0]
            streams = {m.raw_message["channel"] for m in call}
            nodes = len({clients["cluster"].get_node_from_key(s).name for s in streams})
            for client in clients.values():
                await client.aclose()
        finally:
            cluster.stop()
            single.stop()
    print(
        f"Redis {options.redis} Cluster (3 masters, a replica each) vs one node: delete_many of "
        f"{options.entries:,} entries over {options.streams} streams, {options.per_call} per call"
    )
    rounds.report("entries per second", "entries/s", ARMS)
    ratio = rounds.ratio("cluster", "single node")
    print(f"  cluster / single node: {ratio}")
    print(
        f"  round trips per call: single node {trips['single node']}, cluster "
        f"{trips['cluster']} (nodes holding the call's targets: {nodes})"
    )
    ratio.figure(f"Redis {options.redis} Cluster delete_many throughput vs one node", ">= 0.8")
    figure(
        f"Redis {options.redis} Cluster round trips per call per node holding targets",
        trips["cluster"] / nodes,
        "== 1",
        "round trips",
    )


if __name__ == "__main__":
    asyncio.run(main())
