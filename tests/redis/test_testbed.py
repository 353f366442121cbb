"""The Redis servers of the test bed work end to end through FastStream."""

from __future__ import annotations

from typing import Any

import pytest
from faststream.redis import RedisBroker, StreamSub

from tests.testbed.smoke import numbered, round_trip


async def _publish_and_consume(url: str, stream: str, count: int) -> list[str]:
    broker = RedisBroker(url)
    sub = StreamSub(stream, group="smoke", consumer="c1", polling_interval=10)
    return await round_trip(
        broker,
        broker.subscriber(stream=sub),
        lambda body: broker.publish(body, stream=stream),
        numbered(count),
    )


@pytest.mark.parametrize("server_name", ["redis7_server", "redis8_server"])
async def test_publish_consume_then_read_stream_state(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    server: Any = request.getfixturevalue(server_name)
    got = await _publish_and_consume(server.url, f"smoke-{server_name}", 3)
    assert got == ["m0", "m1", "m2"]
    client = server.client()
    assert client.xlen(f"smoke-{server_name}") == 3
    assert client.xpending(f"smoke-{server_name}", "smoke")["pending"] == 0


def test_redis8_is_version_8_2(redis8_server: Any) -> None:
    assert redis8_server.version[:2] >= (8, 2)


def test_redis7_is_version_7(redis7_server: Any) -> None:
    assert redis7_server.version[0] == 7


@pytest.mark.parametrize("server_name", ["redis7_server", "redis8_server"])
async def test_consuming_works_after_a_restart(
    server_name: str, request: pytest.FixtureRequest
) -> None:
    server: Any = request.getfixturevalue(server_name)
    server.restart()
    got = await _publish_and_consume(server.url, f"restart-{server_name}", 2)
    assert got == ["m0", "m1"]
