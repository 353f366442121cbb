"""Trace every deletion with OpenTelemetry, beside FastStream's own spans.

A deletion made by ``DeleteMiddleware`` joins the trace of the message it deleted. The spans
are printed by the SDK's console exporter; to send them to a collector instead, see
docs/observability.md. The orders are read from ``REDIS_URL`` (default
``redis://localhost:6379``) until Ctrl-C::

    python docs/examples/otel_tracing.py
"""

from __future__ import annotations

import asyncio
import os

from faststream import FastStream
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.opentelemetry import RedisTelemetryMiddleware
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

import msgdel
import msgdel.otel
from msgdel.faststream import DeleteMiddleware

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
msgdel.otel.instrument()  # msgdel.default_registry, the global tracer provider

broker = RedisBroker(
    os.environ.get("REDIS_URL", "redis://localhost:6379"),
    middlewares=[RedisTelemetryMiddleware(), DeleteMiddleware()],
)
app = FastStream(broker)


@broker.subscriber(stream=StreamSub("orders", group="billing", consumer="b1"))
async def bill(order: dict[str, str]) -> None:
    """Bill the order; the middleware deletes its entry, and the deletion is a span."""


@app.on_shutdown
async def close() -> None:
    await msgdel.default_registry.aclose()
    provider.force_flush()  # export the spans still buffered


if __name__ == "__main__":
    asyncio.run(app.run())
