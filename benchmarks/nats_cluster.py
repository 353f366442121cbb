"""NATS JetStream: ``delete_many`` on a replicated (R3) stream of a three-node cluster vs the
same on a single node.

Starts the test bed's single nats-server and its three-node cluster (tests/testbed), both on
the newest nats-server found (``tests.testbed.nats_cluster.newest_nats_server``). Each round,
each arm (rotated round by round) fills a fresh stream with ``--count`` small messages (R1 on
the single node, R3 on the cluster, its client on a node that is not the stream leader, as
most of a cluster's clients are), consumes them untimed into FastStream ``NatsMessage``
objects, then times ``msgdel.delete_many`` of them ``--per-call`` at a time
(``JetStreamAdapter()``'s defaults: ``no_erase``, 100 requests in flight, each call first
reading the stream's state: ``STREAM.INFO`` + ``CONSUMER.LIST``). Every stream must be empty
afterwards, on every node.

    .venv/bin/python benchmarks/nats_cluster.py [--count 20000] [--per-call 500]
        [--rounds 3] [--quick]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nats
from _common import Rounds, parser, sizes, stop_on_sigterm
from faststream.nats.message import NatsMessage
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from tests.testbed.nats import NatsServer
from tests.testbed.nats_cluster import NatsCluster, NatsNode

stop_on_sigterm()

ARMS = {
    "single node": "R1 stream: each delete is written by the one server",
    "R3 cluster": "R3 stream: each delete goes to the leader (through the client's node) and "
    "is answered once a quorum (2 of 3) applied it",
}


async def fill(nc: Client, stream: str, count: int, replicas: int) -> None:
    """A new stream holding ``count`` small messages."""
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.in"], num_replicas=replicas))
    for i in range(count):
        await nc.publish(f"{stream}.in", b"payload-%d" % i)
        if i % 1000 == 999:
            await nc.flush()
    await nc.flush()
    for _ in range(1200):  # the server stores asynchronously; wait up to 60 s
        if (await js.stream_info(stream)).state.messages >= count:
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"{stream} was not filled")


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
        for m in await sub.fetch(min(1000, count - len(got)), timeout=10):
            got.append(NatsMessage(raw_message=m, body=m.data))
    await sub.unsubscribe()
    return got


async def leader_of(nc: Client, stream: str) -> str | None:
    cluster = (await nc.jetstream().stream_info(stream)).cluster
    return cluster.leader if cluster else None


async def client_off_leader(cluster: NatsCluster, stream: str) -> tuple[Client, NatsNode]:
    """A connection to a node that is not ``stream``'s leader."""
    probe = await nats.connect(cluster.url)
    try:
        leader = await leader_of(probe, stream)
    finally:
        await probe.close()
    node = next(n for n in cluster.nodes if n.server_name != leader)
    return await nats.connect(node.url), node


async def local_messages(nodes: list[NatsNode], stream: str) -> list[int]:
    """How many messages each node's own replica of ``stream`` holds (its ``/jsz``)."""
    counts: list[int] = []
    for node in nodes:
        jsz = await asyncio.to_thread(node.monitor, "jsz?accounts=true&streams=true")
        details = [d for a in jsz.get("account_details") or [] for d in a["stream_detail"] or []]
        counts.extend(int(d["state"]["messages"]) for d in details if d["name"] == stream)
    return counts


async def delete_rate(target: Any, arm: str, count: int, per_call: int) -> float:
    """Deletes/s of one arm over a fresh stream of ``count`` messages."""
    stream = f"bench_{uuid.uuid4().hex[:8]}"
    clustered = arm == "R3 cluster"
    setup = await nats.connect(target.url)
    try:
        await fill(setup, stream, count, 3 if clustered else 1)
    finally:
        await setup.close()
    if clustered:
        nc, _ = await client_off_leader(target, stream)
    else:
        nc = await nats.connect(target.url)
    try:
        messages = await consume(nc, stream, count)
        adapter = JetStreamAdapter()
        began = time.perf_counter()
        for start in range(0, count, per_call):
            results = await adapter.delete_many(messages[start : start + per_call])
            if not all(
                isinstance(r, msgdel.DeleteResult) and r.outcome is msgdel.Outcome.DELETED
                for r in results
            ):
                raise SystemExit(f"{arm}: not every message was deleted: {results[:3]}")
        seconds = time.perf_counter() - began
        left = int((await nc.jetstream().stream_info(stream)).state.messages)
        if left:
            raise SystemExit(f"{arm}: stream {stream} still holds {left} messages")
        if clustered:
            for _ in range(200):  # the followers apply the last deletes after the answer
                if set(await local_messages(target.nodes, stream)) == {0}:
                    break
                await asyncio.sleep(0.05)
            else:
                raise SystemExit(f"{arm}: a replica still holds messages")
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()
    return count / seconds


async def bench(single: NatsServer, cluster: NatsCluster, args: Any) -> None:
    rounds = Rounds(list(ARMS))
    targets = {"single node": single, "R3 cluster": cluster}
    for number in range(args.rounds):
        for arm in rounds.order(number):
            rate = await delete_rate(targets[arm], arm, args.count, args.per_call)
            rounds.add(arm, rate)
            print(f"  round {number + 1}: {arm}: {rate:,.0f} deletes/s", flush=True)
    version = ".".join(map(str, cluster.version))
    rounds.report(
        f"delete_many of {args.count:,} JetStream messages, {args.per_call} per call, "
        f"nats-server {version}",
        "deletes/s",
        ARMS,
    )
    ratio = rounds.ratio("R3 cluster", "single node")
    print(f"\n  R3 cluster vs single node: {ratio}")
    ratio.figure("NATS R3 cluster delete_many vs single node", None)


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--count", type=int, help="deletes per arm and round (20,000)")
    options.add_argument("--per-call", type=int, default=500, help="messages per delete_many")
    args = sizes(options.parse_args(), count=(20_000, 2_000), rounds=(3, 2))
    with tempfile.TemporaryDirectory() as workdir:
        cluster = NatsCluster(Path(workdir) / "cluster")
        single = NatsServer(Path(workdir) / "single")
        single.executable = cluster.executable  # the same server version in both arms
        try:
            single.start()
            cluster.start()
            asyncio.run(bench(single, cluster, args))
        finally:
            cluster.stop()
            single.stop()


if __name__ == "__main__":
    main()
