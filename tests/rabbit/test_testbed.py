"""The RabbitMQ node of the test bed works end to end through FastStream."""

from __future__ import annotations

import uuid
from typing import Any

from faststream.rabbit import RabbitBroker, RabbitQueue

from tests.rabbit.harness import queue_depth
from tests.testbed.smoke import round_trip


async def consume(url: str, queue: RabbitQueue, count: int, publish: list[str]) -> list[str]:
    """Publish ``publish`` to ``queue`` with FastStream, then consume ``count`` messages."""
    broker = RabbitBroker(url, logger=None)
    return await round_trip(
        broker,
        broker.subscriber(queue),
        lambda body: broker.publish(body, queue=queue, persist=True),
        publish,
        expect=count,
    )


async def test_publish_consume_then_read_queue_depth(rabbit_server: Any) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    got = await consume(rabbit_server.url, RabbitQueue(name), 3, ["m0", "m1", "m2"])
    assert got == ["m0", "m1", "m2"]
    assert await queue_depth(rabbit_server.url, name) == 0

    broker = RabbitBroker(rabbit_server.url, logger=None)
    async with broker:
        await broker.connect()
        await broker.publish("left", queue=name)
        await broker.publish("over", queue=name)
    assert await queue_depth(rabbit_server.url, name) == 2


async def test_durable_queue_survives_a_restart_and_consuming_still_works(
    rabbit_server: Any,
) -> None:
    name = f"restart-{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(rabbit_server.url, logger=None)
    async with broker:
        await broker.connect()
        await broker.declare_queue(RabbitQueue(name, durable=True))
        await broker.publish("before", queue=name, persist=True)

    rabbit_server.restart()

    assert await queue_depth(rabbit_server.url, name) == 1
    got = await consume(rabbit_server.url, RabbitQueue(name, durable=True), 2, ["after"])
    assert got == ["before", "after"]
    assert await queue_depth(rabbit_server.url, name) == 0


def test_node_is_private(rabbit_server: Any) -> None:
    """Its own node name, AMQP port and epmd, data and logs inside its work dir."""
    assert rabbit_server.node == f"msgdel-{rabbit_server.port}@localhost"
    assert rabbit_server.port != 5672
    assert rabbit_server.epmd_port != 4369
    node_dir = rabbit_server.workdir / "mnesia" / rabbit_server.node
    assert node_dir.is_dir()
    assert (rabbit_server.workdir / "log" / f"{rabbit_server.node}.log").exists()
