"""Clear each device's retained config once the app has applied it.

Needs an MQTT broker (``MQTT_URL``, default ``mqtt://localhost:1883``) holding a retained
message, e.g. ``mosquitto_pub -r -t devices/1/config -m on`` (package mosquitto-clients).
``python docs/examples/mqtt_retained.py`` runs until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.mqtt import MQTTBroker
from faststream.mqtt.annotations import MQTTMessage

import msgdel

broker = MQTTBroker(os.environ.get("MQTT_URL", "mqtt://localhost:1883"))
app = FastStream(broker)


@broker.subscriber("devices/+/config")
async def handle(body: str, message: MQTTMessage) -> None:
    result = await msgdel.delete(message)  # clear the retained config once applied
    print(result.outcome, result.target)


if __name__ == "__main__":
    asyncio.run(app.run())
