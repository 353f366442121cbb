"""Purge a KV key and delete an object outside a FastStream handler.

KV and object-store entries do not carry their connection: outside a handler msgdel reaches
the server through the broker their adapters are registered with. Needs a NATS server with
JetStream (``NATS_URL``, default ``nats://localhost:4222``); ``python
docs/examples/nats_kv_outside_handler.py`` stores a session and a report, reads each back with
``get_one()``, deletes both, and stops.
"""

from __future__ import annotations

import asyncio
import os

from faststream.nats import KvWatch, NatsBroker, ObjWatch
from faststream.nats.message import NatsKvMessage, NatsObjMessage

import msgdel
from msgdel.adapters.nats import KeyValueAdapter, ObjectStoreAdapter

broker = NatsBroker(os.environ.get("NATS_URL", "nats://localhost:4222"), logger=None)
msgdel.register(NatsKvMessage, KeyValueAdapter(broker, purge=True), replace=True)
msgdel.register(NatsObjMessage, ObjectStoreAdapter(broker), replace=True)
# no handlers: read with get_one()
sessions = broker.subscriber("alice", kv_watch=KvWatch("sessions"))
reports = broker.subscriber("reports", obj_watch=ObjWatch())


async def main() -> None:
    async with broker:
        await broker.start()
        await (await broker.key_value("sessions")).put("alice", b"token-1")
        await (await broker.object_storage("reports")).put("2024.pdf", b"%PDF-1.7")
        for subscriber in (sessions, reports):
            message = await subscriber.get_one(timeout=5)
            if message is None:
                raise RuntimeError("nothing to read back")
            result = await msgdel.delete(message)
            print(result.outcome, result.target, result.ids)
            # Outcome.DELETED sessions ('alice',), then Outcome.DELETED reports ('2024.pdf',)


if __name__ == "__main__":
    asyncio.run(main())
