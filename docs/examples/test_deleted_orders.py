"""Tests that assert what a FastStream app deleted, with the ``msgdel_deletions`` fixture.

Needs pytest and pytest-asyncio (``pip install pytest pytest-asyncio``). The tests are
coroutines marked ``@pytest.mark.asyncio``, as pytest-asyncio's default (strict) mode
requires; with ``asyncio_mode = "auto"`` in your pytest configuration the marks can go.
The second test runs against a real Redis when ``REDIS_URL`` is set::

    pytest docs/examples/test_deleted_orders.py
"""

from __future__ import annotations

import os

import pytest
from faststream.redis import RedisBroker, TestRedisBroker

from msgdel import Outcome
from msgdel.faststream import DeleteMiddleware
from msgdel.testing import Deletions

broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://localhost:6379"),
    middlewares=[DeleteMiddleware()],
    graceful_timeout=10,  # closing waits for the handlers in flight, and their deletions
)


@broker.subscriber(stream="orders")
async def handle(order: str) -> None: ...


@pytest.mark.asyncio
async def test_orders_are_deleted(msgdel_deletions: Deletions) -> None:
    async with TestRedisBroker(broker) as br:  # in memory: nothing reaches a Redis
        await br.publish("hello", stream="orders")
    assert msgdel_deletions.bodies == [b"hello"]
    assert msgdel_deletions.results[0].outcome is Outcome.SKIPPED


@pytest.mark.skipif("REDIS_URL" not in os.environ, reason="needs a Redis: set REDIS_URL")
@pytest.mark.asyncio
async def test_a_real_redis_deletes_them_too(msgdel_deletions: Deletions) -> None:
    async with TestRedisBroker(broker, with_real=True) as br:
        await br.publish("hello", stream="orders")
        await handle.wait_call(timeout=10)
    assert msgdel_deletions.bodies == [b"hello"]
    assert msgdel_deletions.results[0].outcome is Outcome.DELETED
