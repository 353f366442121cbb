"""Count every deletion in Prometheus and serve the metrics over HTTP.

``msgdel.prometheus.instrument()`` counts every deletion made through
``msgdel.default_registry`` in prometheus-client's ``REGISTRY``; ``metrics.track(batcher)``
adds the Batcher's gauges. The metrics are served on ``METRICS_PORT`` (default 9108; ``0``
picks a free port), the orders read from ``REDIS_URL`` (default ``redis://localhost:6379``),
until Ctrl-C::

    python docs/examples/prometheus_metrics.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from prometheus_client import start_http_server

import msgdel
import msgdel.prometheus
from msgdel.faststream import DeleteMiddleware

batcher = msgdel.Batcher()
metrics = msgdel.prometheus.instrument()  # msgdel.default_registry -> prometheus REGISTRY
metrics.track(batcher)  # the gauges of a Batcher, if you use one

broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://localhost:6379"),
    middlewares=[DeleteMiddleware(batcher=batcher)],
)
app = FastStream(broker)
served: list[Any] = []


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: dict[str, str]) -> None:
    """Bill the order; the middleware deletes its entry, and the metrics count it."""


@app.on_startup
async def serve_metrics() -> None:
    server, thread = start_http_server(int(os.environ.get("METRICS_PORT", "9108")))
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
