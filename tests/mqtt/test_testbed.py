"""The Mosquitto server of the test bed works end to end through FastStream (0.7 only)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

import zmqtt
from faststream.mqtt import MQTTBroker

from tests.mqtt.helpers import retained
from tests.testbed.smoke import numbered, round_trip


async def _publish_and_consume(url: str, topic: str, count: int, *, retain: bool) -> list[str]:
    broker = MQTTBroker(url)
    qos = zmqtt.QoS.AT_LEAST_ONCE
    return await round_trip(
        broker,
        broker.subscriber(topic, qos=qos),
        lambda body: broker.publish(body, topic, qos=qos, retain=retain),
        numbered(count),
    )


async def test_publish_consume_then_read_the_retained_message(mosquitto_server: Any) -> None:
    got = await _publish_and_consume(mosquitto_server.url, "smoke/retained", 2, retain=True)
    assert got == ["m0", "m1"]
    assert await retained(mosquitto_server.port, "smoke/retained") == {"smoke/retained": b"m1"}


async def test_consuming_works_after_a_restart(mosquitto_server: Any) -> None:
    await _publish_and_consume(mosquitto_server.url, "restart/retained", 1, retain=True)
    mosquitto_server.restart()
    assert await retained(mosquitto_server.port, "restart/retained") == {
        "restart/retained": b"m0"
    }, "persistence"
    got = await _publish_and_consume(mosquitto_server.url, "restart/live", 2, retain=False)
    assert got == ["m0", "m1"]
