"""Clear a retained MQTT message outside a FastStream handler.

MQTT messages do not carry their connection: inside a handler msgdel publishes through the
handler's broker, outside one through the broker its adapter is registered with. Needs an MQTT
broker (``MQTT_URL``, default ``mqtt://localhost:1883``); ``python
docs/examples/mqtt_outside_handler.py`` reads one retained config, clears it, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.mqtt import MQTTBroker
from faststream.mqtt.message import MQTTMessage

import msgdel
from msgdel.adapters.mqtt import MQTTAdapter

broker = MQTTBroker(os.environ.get("MQTT_URL", "mqtt://localhost:1883"))
msgdel.register(MQTTMessage, MQTTAdapter(broker), replace=True)
configs = broker.subscriber("devices/+/config")  # no handler: read with get_one()


async def main() -> None:
    async with broker:
        await broker.start()
        message = await configs.get_one(timeout=5)  # a retained config, if there is one
        if message is None:
            print("no retained config")
            return
        result = await msgdel.delete(message)
        print(result.outcome, result.target)


if __name__ == "__main__":
    asyncio.run(main())
