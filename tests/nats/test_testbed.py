"""The NATS server of the test bed works end to end through FastStream, with JetStream."""

from __future__ import annotations

from typing import Any

import nats
from faststream.nats import JStream, NatsBroker

from tests.testbed.smoke import numbered, round_trip


async def _publish_and_consume(url: str, stream: str, count: int) -> list[str]:
    broker = NatsBroker(url)
    return await round_trip(
        broker,
        broker.subscriber(f"{stream}.in", stream=JStream(stream)),
        lambda body: broker.publish(body, f"{stream}.in", stream=stream),
        numbered(count),
    )


async def _stream_messages(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
        return int(info.state.messages)
    finally:
        await nc.close()


async def test_publish_consume_then_read_jetstream_stream_state(nats_server: Any) -> None:
    got = await _publish_and_consume(nats_server.url, "smoke", 3)
    assert got == ["m0", "m1", "m2"]
    assert await _stream_messages(nats_server.url, "smoke") == 3


async def test_consuming_works_after_a_restart(nats_server: Any) -> None:
    got = await _publish_and_consume(nats_server.url, "before_restart", 2)
    assert got == ["m0", "m1"]
    nats_server.restart()
    assert await _stream_messages(nats_server.url, "before_restart") == 2, "the store survives"
    got = await _publish_and_consume(nats_server.url, "after_restart", 2)
    assert got == ["m0", "m1"]
