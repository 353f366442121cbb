"""Let the middleware count its deletions, in a Prometheus registry of the app's own.

``DeleteMiddleware(batcher=..., metrics=...)`` instruments the registry it deletes through
and tracks its batcher as ``batcher="default"``: ``metrics=True`` counts in prometheus-client's
``REGISTRY``, a ``CollectorRegistry`` counts there instead. The metrics are served on
``METRICS_PORT`` (default 9108; ``0`` picks a free port), the orders read from ``REDIS_URL``
(default ``redis://localhost:6379``), until Ctrl-C::

    python docs/examples/prometheus_middleware.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from prometheus_client import CollectorRegistry, start_http_server

import msgdel
from msgdel.faststream import DeleteMiddleware

my_registry = CollectorRegistry()
batcher = msgdel.Batcher()
broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://localhost:6379"),
    middlewares=[DeleteMiddleware(batcher=batcher, metrics=my_registry)],
)
app = FastStream(broker)
served: list[Any] = []


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: dict[str, str]) -> None:
    """Bill the order; the middleware deletes its entry, and counts it in my_registry."""


@app.on_startup
async def serve_metrics() -> None:
    port = int(os.environ.get("METRICS_PORT", "9108"))
    server, thread = start_http_server(port, registry=my_registry)
    served[:] = [server, thread]
    print(f"metrics on http://127.0.0.1:{server.server_port}/metrics")


@app.on_shutdown  # runs while the broker is still connected
async def close() -> None:
    await batcher.close()  # sends what is still queued
    await msgdel.default_registry.aclose()
    server, thread = served
    server.shutdown()
    server.server_close()
    thread.join()


if __name__ == "__main__":
    asyncio.run(app.run())
