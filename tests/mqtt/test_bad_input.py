"""The MQTT adapter's options, given a wrong type or value: each is refused at once, saying what
to pass."""

from __future__ import annotations

from msgdel.adapters.mqtt import MQTTAdapter
from tests.bad_input import Refused, check, rows


@rows(
    Refused("qos-a-number", lambda: MQTTAdapter(qos=1), TypeError, ("zmqtt.QoS",)),
    Refused("concurrency-zero", lambda: MQTTAdapter(concurrency=0), ValueError, (">= 1",)),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)
