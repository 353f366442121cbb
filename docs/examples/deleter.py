"""Delete a poison order from inside its handler; FastStream acknowledges the others.

``delete: Deleter`` gives a handler ``await delete()`` for the message it is handling.
``deleter(registry=..., batcher=...)`` builds the same dependency with a registry or batcher
of your own (``cast=False``: FastStream must not validate the function it returns). Run it
against any Redis (``REDIS_URL``, default ``redis://localhost:6379``) until Ctrl-C::

    python docs/examples/deleter.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

from faststream import Depends, FastStream, Logger
from faststream.redis import RedisBroker, StreamSub

import msgdel
from msgdel.faststream import DeleteFunction, Deleter, deleter

broker = RedisBroker(os.environ.get("REDIS_URL", "redis://localhost:6379"))
app = FastStream(broker)


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: dict[str, str], delete: Deleter, logger: Logger) -> None:
    if order.get("poison"):
        result = await delete()  # deletes this message now; returns its DeleteResult
        logger.info("deleted poison order %s: %s", result.ids[0], result.outcome.value)


audit_registry = msgdel.Registry()  # e.g. with adapters registered with other options
AuditDeleter = Annotated[DeleteFunction, Depends(deleter(registry=audit_registry), cast=False)]


@broker.subscriber(stream=StreamSub("audit", group="auditors", consumer="a1"))
async def audit(event: dict[str, str], delete: AuditDeleter) -> None:
    await delete()  # every audit event goes once read, through audit_registry


@app.on_shutdown
async def close_msgdel() -> None:
    await msgdel.default_registry.aclose()
    await audit_registry.aclose()


if __name__ == "__main__":
    asyncio.run(app.run())
