"""Deleting Redis stream entries behind Redis Sentinel (one master, two replicas, three
sentinels, Redis 7 and Redis 8.2, started by the test bed), with messages a FastStream
``RedisSentinelBroker`` app consumed, checked on the master afterwards: the streams'
entries and their group's pending lists.

The broker's client is a ``redis.asyncio.Redis`` whose pool asks the sentinels for the
master on every new connection: msgdel deletes through it as through a single server's, and
a failover is a connection error (retryable) followed by the promoted replica."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faststream.redis
import pytest
from faststream import AckPolicy
from faststream.redis import StreamSub
from faststream.redis.message import RedisStreamMessage

import msgdel
from msgdel import DeleteResult, DeletionFailed, Outcome
from msgdel.adapters.redis import RedisStreamAdapter
from tests.redis.harness import GROUP, capture_messages, entry_ids, pending_ids, wait_for
from tests.testbed.redis_cluster import SENTINEL_MASTER

RedisSentinelBroker = getattr(faststream.redis, "RedisSentinelBroker", None)

pytestmark = pytest.mark.skipif(
    RedisSentinelBroker is None,
    reason="this FastStream has no RedisSentinelBroker (new in 0.7.2)",
)

_names = itertools.count()


def registry_with(adapter: RedisStreamAdapter) -> msgdel.Registry:
    registry = msgdel.Registry()
    registry.register(RedisStreamMessage, adapter)
    return registry


@asynccontextmanager
async def consumed(sentinel: Any, per_stream: int, streams: int = 3) -> AsyncIterator[dict]:
    """Fill ``streams`` fresh streams on the master, run a ``RedisSentinelBroker`` app that
    reads them in a consumer group and acknowledges nothing, and yield, while it runs, each
    stream's consumed messages in order."""
    names = [f"sn{next(_names)}" for _ in range(streams)]
    client = sentinel.master().client()
    ids = {}
    for name in names:
        client.xgroup_create(name, GROUP, id="0", mkstream=True)
        ids[name] = [client.xadd(name, {"__data__": f"m{i}"}).decode() for i in range(per_stream)]
    assert RedisSentinelBroker is not None
    broker = RedisSentinelBroker(
        sentinels=sentinel.sentinel_nodes, sentinel_master_name=SENTINEL_MASTER
    )
    got = capture_messages(broker)
    for name in names:

        @broker.subscriber(
            stream=StreamSub(name, group=GROUP, consumer="c1", polling_interval=10),
            ack_policy=AckPolicy.MANUAL,
        )
        async def handle(body: Any) -> None:
            pass

    async with broker:
        await broker.start()
        await wait_for(lambda: len(got) >= streams * per_stream, within=15)
        by_id = {
            (m.raw_message["channel"], m.raw_message["message_ids"][0].decode()): m for m in got
        }
        yield {name: [by_id[name, i] for i in ids[name]] for name in names}


def interleaved(by_stream: dict[str, list[Any]], count: int) -> list[Any]:
    return [by_stream[s][n] for n in range(count) for s in by_stream]


def deleted(messages: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [
        (m.raw_message["channel"], (m.raw_message["message_ids"][0].decode(),), Outcome.DELETED)
        for m in messages
    ]


def described(results: Sequence[DeleteResult]) -> list[tuple[Any, ...]]:
    return [(r.target, r.ids, r.outcome) for r in results]


def state(server: Any, stream: str) -> tuple[list[str], list[str]]:
    client = server.client()
    return entry_ids(client, stream), pending_ids(client, stream)


async def test_delete_many_through_a_sentinel_broker_deletes_exactly_those_entries(
    redis_sentinel: Any,
) -> None:
    """Three streams, two of each stream's three entries deleted in one call: the third
    stays, still pending; nothing else is left pending."""
    async with consumed(redis_sentinel, 3) as by_stream:
        messages = interleaved(by_stream, 2)
        results = await msgdel.delete_many(messages, registry=registry_with(RedisStreamAdapter()))
    assert described(results) == deleted(messages)
    master = redis_sentinel.master()
    for stream, kept in by_stream.items():
        neighbour = kept[2].raw_message["message_ids"][0].decode()
        assert state(master, stream) == ([neighbour], [neighbour])


async def test_a_stopped_master_fails_retryably_and_a_retry_deletes_on_the_promoted_replica(
    redis_sentinel: Any,
) -> None:
    """The master is stopped before the call: every message gets
    DeletionFailed(retryable=True) and nothing is deleted; once the sentinels have promoted
    a replica, the same call deletes every entry there and leaves nothing pending."""
    sentinel = redis_sentinel
    registry = registry_with(RedisStreamAdapter())
    try:
        async with consumed(sentinel, 2) as by_stream:
            master = sentinel.master()
            master.client().execute_command("WAIT", 2, 5000)  # the replicas have every entry
            await asyncio.to_thread(master.stop)
            messages = interleaved(by_stream, 2)
            first = await msgdel.delete_many(messages, registry=registry, return_exceptions=True)
            assert all(isinstance(o, DeletionFailed) for o in first), first
            assert all(o.retryable for o in first if isinstance(o, DeletionFailed))

            promoted = await asyncio.to_thread(sentinel.failover_from, master)
            retried = await msgdel.delete_many(messages, registry=registry)
        assert described(retried) == deleted(messages)
        for stream in by_stream:
            assert state(promoted, stream) == ([], [])
    finally:
        await asyncio.to_thread(sentinel.settle)
