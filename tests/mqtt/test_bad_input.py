"""The MQTT adapter's options, given a wrong type or value, and malformed retained-topic
addresses: each is refused at once, saying what to pass."""

from __future__ import annotations

import math

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter
from msgdel.address import RetainedTopic
from tests.bad_input import Refused, check, rows

SECRET = "hunter2-mqtt"


@rows(
    Refused("qos-a-number", lambda: MQTTAdapter(qos=1), TypeError, ("zmqtt.QoS",)),
    Refused("concurrency-zero", lambda: MQTTAdapter(concurrency=0), ValueError, (">= 1",)),
    Refused(
        "retained-wait-zero", lambda: MQTTAdapter(retained_wait=0), ValueError, ("retained_wait",)
    ),
    Refused(
        "retained-wait-nan", lambda: MQTTAdapter(retained_wait=math.nan), ValueError, ("finite",)
    ),
    Refused(
        "topic-with-a-single-level-wildcard",
        lambda: RetainedTopic("devices/+/config"),
        ValueError,
        ("no wildcards", "'devices/+/config'"),
    ),
    Refused(
        "topic-with-a-multi-level-wildcard",
        lambda: RetainedTopic("devices/#"),
        ValueError,
        ("no wildcards",),
    ),
    Refused("topic-empty", lambda: RetainedTopic(""), ValueError, ("MQTT topic name",)),
    Refused(
        "topic-text-not-a-str",
        lambda: RetainedTopic.parse(7),  # type: ignore[arg-type]
        TypeError,
        ("topic str",),
    ),
    Refused(
        "a-topic-on-a-nats-url",
        lambda: msgdel.delete_at(f"nats://u:{SECRET}@127.0.0.1:1", [RetainedTopic("a/b")]),
        ValueError,
        ("mqtt://", "nothing was sent"),
        secret=SECRET,
    ),
    Refused(
        "a-client-of-another-library",
        lambda: msgdel.delete_at(object(), [RetainedTopic("a/b")]),
        msgdel.UnsupportedDeletion,
        ("zmqtt.MQTTClient",),
    ),
)
async def test_a_wrong_argument_is_refused_saying_what_to_pass(row: Refused) -> None:
    await check(row)
