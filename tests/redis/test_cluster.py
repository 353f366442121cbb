"""Deleting Redis stream entries on a Redis Cluster (three masters with a replica each, Redis 7
and Redis 8.2, started by the test bed), with messages a FastStream 0.7 ``RedisClusterBroker``
app consumed, checked on every master afterwards: the streams' entries, their group's pending
lists, and the commands each node received (``INFO commandstats``).

On a cluster the commands go by node: one round trip per master holding any of the targets,
nothing atomic spans two streams (a transaction may hold one slot only), and each node is asked
on its own whether it has XACKDEL.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faststream.redis
import pytest
from faststream import AckPolicy
from faststream.redis import StreamSub
from faststream.redis.message import RedisStreamMessage

import msgdel
from msgdel import DeleteResult, DeletionFailed, NotDeletable, Outcome, Semantics
from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.address import RedisEntry
from tests.redis.harness import GROUP, capture_messages, entry_ids, pending_ids, wait_for

RedisClusterBroker = getattr(faststream.redis, "RedisClusterBroker", None)

needs_cluster_broker = pytest.mark.skipif(
    RedisClusterBroker is None, reason="FastStream 0.6 has no RedisClusterBroker (new in 0.7.0)"
)

COMMANDS = ("xackdel", "xdelex", "evalsha", "eval", "multi", "exec", "xack", "xdel")
"""Every command a deletion could send, counted per node."""

_names = itertools.count()


def registry_with(adapter: RedisStreamAdapter) -> msgdel.Registry:
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, adapter)
    return registry


ADAPTERS = {
    "waiting-for-groups": RedisStreamAdapter(),
    "ignoring-other-groups": RedisStreamAdapter(ignore_other_groups=True),
}


def commands_by_node(cluster: Any) -> dict[int, dict[str, int]]:
    """How often each running node has received each of :data:`COMMANDS`, by port."""
    counts = {}
    for node in cluster.nodes:
        if node.running:
            stats = node.client().info("commandstats")
            counts[node.port] = {c: stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in COMMANDS}
    return counts


def sent_since(before: dict[int, dict[str, int]], after: dict[int, dict[str, int]]) -> dict:
    """The commands each node received between two counts (nodes that received none left out)."""
    sent = {}
    for port, counts in after.items():
        delta = {c: n - before.get(port, {}).get(c, 0) for c, n in counts.items()}
        delta = {c: n for c, n in delta.items() if n}
        if delta:
            sent[port] = delta
    return sent


def fill(cluster: Any, streams: Iterable[str], per_stream: int) -> dict[str, list[str]]:
    """Write ``per_stream`` entries in FastStream's format to each stream, on its master,
    after creating the group at the stream's start; returns each stream's entry ids."""
    ids = {}
    for stream in streams:
        client = cluster.owner(stream).client()
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        ids[stream] = [
            client.xadd(stream, {"__data__": f"m{i}"}).decode() for i in range(per_stream)
        ]
    return ids


def state(cluster: Any, stream: str) -> tuple[list[str], list[str]]:
    """The entries ``stream`` holds on its master, and its group's pending ones."""
    client = cluster.owner(stream).client()
    return entry_ids(client, stream), pending_ids(client, stream)


def streams_on(cluster: Any, per_master: int, masters: int = 3) -> list[str]:
    """Fresh stream names, ``per_master`` on each of the first ``masters`` masters."""
    by_master = cluster.keys_by_master(f"cl{next(_names)}", per_master)
    return [key for keys in list(by_master.values())[:masters] for key in keys]


@asynccontextmanager
async def consumed(cluster: Any, streams: Sequence[str], per_stream: int) -> AsyncIterator[dict]:
    """Run a ``RedisClusterBroker`` app that reads ``streams`` (filled first) in a consumer
    group and acknowledges nothing; yield, while it runs, each stream's consumed messages in
    order."""
    ids = fill(cluster, streams, per_stream)
    assert RedisClusterBroker is not None
    broker = RedisClusterBroker(cluster.url)
    got = capture_messages(broker)
    for stream in streams:

        @broker.subscriber(
            stream=StreamSub(stream, group=GROUP, consumer="c1", polling_interval=10),
            ack_policy=AckPolicy.MANUAL,
        )
        async def handle(body: Any) -> None:
            pass

    async with broker:
        await broker.start()
        await wait_for(lambda: len(got) >= len(streams) * per_stream, within=15)
        by_id = {
            (m.raw_message["channel"], m.raw_message["message_ids"][0].decode()): m for m in got
        }
        yield {stream: [by_id[stream, i] for i in ids[stream]] for stream in streams}


def interleaved(by_stream: dict[str, list[Any]], count: int) -> list[Any]:
    """The first ``count`` messages of every stream, round robin over the streams."""
    return [by_stream[s][n] for n in range(count) for s in by_stream]


def described(results: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (r.target, r.ids, r.outcome, r.removed)
        if isinstance(r, DeleteResult)
        else (type(r).__name__, getattr(r, "retryable", None))
        for r in results
    ]


def expected(messages: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (m.raw_message["channel"], (m.raw_message["message_ids"][0].decode(),), Outcome.DELETED, 1)
        for m in messages
    ]


@needs_cluster_broker
@pytest.mark.parametrize("adapter", list(ADAPTERS), ids=list(ADAPTERS))
async def test_delete_many_over_streams_on_every_master_deletes_exactly_those_entries(
    redis_cluster: Any, adapter: str
) -> None:
    """Six streams, two on each master; two of each stream's three entries are deleted in
    one call (on Redis 7 with ignore_other_groups this raised CrossSlotTransactionError)."""
    streams = streams_on(redis_cluster, 2)
    async with consumed(redis_cluster, streams, 3) as by_stream:
        messages = interleaved(by_stream, 2)
        results = await msgdel.delete_many(messages, registry=registry_with(ADAPTERS[adapter]))
    assert described(results) == expected(messages)
    assert {r.semantics for r in results} == {Semantics.EXACT}
    for stream, kept in by_stream.items():
        neighbour = kept[2].raw_message["message_ids"][0].decode()
        assert state(redis_cluster, stream) == ([neighbour], [neighbour])


@needs_cluster_broker
@pytest.mark.parametrize("adapter", list(ADAPTERS), ids=list(ADAPTERS))
async def test_each_master_holding_targets_gets_one_command_per_stream_and_no_transaction(
    redis_cluster: Any, adapter: str
) -> None:
    """Four streams on two of the three masters: each of those two receives one command per
    stream (a script call: on 8.2 the one around XACKDEL, on 7 the one that checks every
    group), no MULTI, no EXEC; the third receives nothing. (Replicas are left out: they
    receive what their master replicates.)"""
    streams = streams_on(redis_cluster, 2, masters=2)
    async with consumed(redis_cluster, streams, 2) as by_stream:
        before = commands_by_node(redis_cluster)
        await msgdel.delete_many(
            interleaved(by_stream, 2), registry=registry_with(ADAPTERS[adapter])
        )
        sent = sent_since(before, commands_by_node(redis_cluster))
    owners = {redis_cluster.owner(s).port for s in streams}
    masters = {m.port for m in redis_cluster.masters()}
    seven = redis_cluster.nodes[0].version[0] == 7
    command = "evalsha"
    in_scripts = {"xack", "xdel"} if seven else {"xackdel"}  # counted, though a script sent them
    received = {
        port: {c: n for c, n in sent.get(port, {}).items() if c not in in_scripts}
        for port in masters
    }
    assert received == {port: {command: 2} if port in owners else {} for port in masters}


@needs_cluster_broker
async def test_a_cluster_mid_upgrade_gets_xackdel_on_its_redis_8_2_nodes_only(
    mixed_redis_cluster: Any,
) -> None:
    """One master on Redis 7, two on 8.2: each node is asked whether it has XACKDEL, and
    every node's entries are deleted with what that node has."""
    cluster = mixed_redis_cluster
    streams = streams_on(cluster, 1)
    async with consumed(cluster, streams, 2) as by_stream:
        before = commands_by_node(cluster)
        messages = interleaved(by_stream, 2)
        results = await msgdel.delete_many(messages, registry=registry_with(RedisStreamAdapter()))
        sent = sent_since(before, commands_by_node(cluster))
    assert described(results) == expected(messages)
    for stream in streams:
        assert state(cluster, stream) == ([], [])
        master = cluster.owner(stream)
        if master.version[:2] >= (8, 2):  # XACKDEL, in the script that measures it
            assert sent[master.port] == {"evalsha": 1, "xackdel": 1}
        else:  # the script, and the commands it called
            assert sent[master.port] == {"evalsha": 1, "xack": 2, "xdel": 2}


@needs_cluster_broker
async def test_a_stopped_master_fails_its_own_entries_retryably_and_a_retry_after_failover_deletes(
    redis_cluster: Any,
) -> None:
    """One stream per master; its master stopped before the call: that stream's messages get
    DeletionFailed(retryable=True), the others are deleted. Once its replica is promoted, the
    same call deletes them, and nothing is left pending on it."""
    cluster = redis_cluster
    streams = streams_on(cluster, 1)
    registry = registry_with(RedisStreamAdapter())
    try:
        async with consumed(cluster, streams, 2) as by_stream:
            down = streams[0]
            master = cluster.owner(down)
            replica = cluster.replica_of(master)
            master.client().execute_command("WAIT", 1, 5000)  # the replica has every entry
            await asyncio.to_thread(master.stop)
            messages = interleaved(by_stream, 2)
            first = await msgdel.delete_many(messages, registry=registry, return_exceptions=True)
            for message, outcome in zip(messages, first):
                if message.raw_message["channel"] == down:
                    assert isinstance(outcome, DeletionFailed), outcome
                    assert outcome.retryable is True
                else:
                    assert isinstance(outcome, DeleteResult), outcome
                    assert outcome.outcome is Outcome.DELETED
            for stream in streams[1:]:
                assert state(cluster, stream) == ([], [])

            await asyncio.to_thread(cluster.failover, replica)
            failed = [m for m, o in zip(messages, first) if isinstance(o, DeletionFailed)]
            retried = await msgdel.delete_many(failed, registry=registry)
        assert described(retried) == expected(failed)
        assert cluster.owner(down) is replica
        assert state(cluster, down) == ([], [])
    finally:
        await asyncio.to_thread(cluster.settle)


@needs_cluster_broker
@pytest.mark.parametrize("moved", ["resharded", "mid-migration"])
async def test_a_stream_moved_to_another_master_is_deleted_there(
    redis8_cluster: Any, moved: str
) -> None:
    """The slot of one stream moves to another master after the app's client learnt the slot
    map: the old master answers MOVED (slot given away) or ASK (keys migrated, slot not yet
    given), and its commands follow the stream to its new master."""
    cluster = redis8_cluster
    streams = streams_on(cluster, 1)
    async with consumed(cluster, streams, 2) as by_stream:
        stream = streams[0]
        source, target = cluster.owner(stream), cluster.owner(streams[1])
        finish = moved == "resharded"
        await asyncio.to_thread(cluster.move_slot_of, stream, target, finish=finish)
        messages = interleaved(by_stream, 2)
        before = commands_by_node(cluster)
        registry = registry_with(RedisStreamAdapter())
        results = await msgdel.delete_many(messages, registry=registry, return_exceptions=True)
        sent = sent_since(before, commands_by_node(cluster))
        if not finish:
            await asyncio.to_thread(cluster.finish_move, stream, target)
        # A busy machine can make redis-py give up following the redirections of a slot
        # still migrating ("TTL exhausted"): that is retryable, and a retry deletes.
        failed = [i for i, r in enumerate(results) if isinstance(r, DeletionFailed)]
        assert all(results[i].retryable for i in failed), described(results)  # type: ignore[union-attr]
        if failed:
            retried = await msgdel.delete_many([messages[i] for i in failed], registry=registry)
            for i, result in zip(failed, retried):
                results[i] = result
    assert described(results) == expected(messages)
    if not failed:
        # the moved stream's XACKDEL ran on its new master (its script sent again as an
        # EVAL), beside that master's own stream's; the old master refused it (a
        # redirection is no call)
        assert sent[target.port]["xackdel"] == 2
        assert "xackdel" not in sent.get(source.port, {})
    assert cluster.owner(stream) is target is not source
    for name in streams:
        assert state(cluster, name) == ([], [])


async def test_delete_at_on_a_cluster_client_deletes_addresses_on_every_master(
    redis_cluster: Any,
) -> None:
    """``delete_at`` with a ``redis.asyncio.cluster.RedisCluster``: the addresses are checked
    and deleted node by node; an absent stream is NotDeletable, the others are deleted."""
    from redis.asyncio.cluster import RedisCluster

    streams = streams_on(redis_cluster, 1)
    ids = fill(redis_cluster, streams, 2)
    for stream in streams:
        redis_cluster.owner(stream).client().xreadgroup(GROUP, "c1", {stream: ">"})
    addresses = [RedisEntry(s, ids[s][0], group=GROUP) for s in streams]
    absent = RedisEntry(f"{streams[0]}-absent", "1-0", group=GROUP)
    host, port = redis_cluster.startup_nodes[0]
    async with RedisCluster(host=host, port=port) as client:
        results = await msgdel.delete_at(client, [*addresses, absent], return_exceptions=True)
    assert described(results[:-1]) == [(s, (ids[s][0],), Outcome.DELETED, 1) for s in streams]
    assert isinstance(results[-1], NotDeletable)
    for stream in streams:
        assert state(redis_cluster, stream) == ([ids[stream][1]], [ids[stream][1]])


@needs_cluster_broker
async def test_a_batcher_settles_other_masters_at_once_and_retries_a_stopped_ones_until_promoted(
    redis7_cluster: Any,
) -> None:
    """A Batcher flush while one master is down: the other masters' futures get their
    results at once; the stopped master's futures stay pending while the Batcher retries, and
    get their results once its replica is promoted. No submitted deletion is lost."""
    cluster = redis7_cluster
    streams = streams_on(cluster, 1)
    try:
        async with consumed(cluster, streams, 2) as by_stream:
            down = streams[0]
            master = cluster.owner(down)
            replica = cluster.replica_of(master)
            master.client().execute_command("WAIT", 1, 5000)
            await asyncio.to_thread(master.stop)
            messages = interleaved(by_stream, 2)
            registry = registry_with(RedisStreamAdapter())
            async with msgdel.Batcher(registry, backoff=0.05, max_backoff=0.2) as batcher:
                futures = [await batcher.submit(m) for m in messages]
                waiting = [f for m, f in zip(messages, futures) if m.raw_message["channel"] == down]
                others = [f for f in futures if f not in waiting]
                settled = await asyncio.wait_for(asyncio.gather(*others), timeout=10)
                assert {r.outcome for r in settled} == {Outcome.DELETED}
                assert not any(f.done() for f in waiting)

                await asyncio.to_thread(cluster.failover, replica)
                promoted = await asyncio.wait_for(asyncio.gather(*waiting), timeout=15)
        assert {r.outcome for r in promoted} == {Outcome.DELETED}
        for stream in streams:
            assert state(cluster, stream) == ([], [])
    finally:
        await asyncio.to_thread(cluster.settle)
