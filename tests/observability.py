"""What the observability specs of every backend share: a Prometheus exporter to scrape over
HTTP, and an OpenTelemetry tracer provider whose spans stay in memory.

Needs the ``prometheus`` and ``otel`` extras and ``opentelemetry-sdk`` (the redis and nats tox
envs install them).
"""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


class Scrape:
    """The samples of one scrape, parsed by prometheus-client's own text parser."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def samples(self, name: str) -> list[Sample]:
        """Every sample named ``name`` (``msgdel_messages_total``, ``..._bucket``, ...)."""
        return [s for f in self.families.values() for s in f.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples named ``name`` whose labels include ``labels``; None when
        there is no such sample."""
        found = [s.value for s in self.samples(name) if labels.items() <= s.labels.items()]
        return sum(found) if found else None

    def label_values(self) -> set[str]:
        """Every label value of every sample (to look for what must not be there)."""
        return {v for f in self.families.values() for s in f.samples for v in s.labels.values()}


class Exporter:
    """prometheus-client's HTTP exporter of a fresh registry, on a free loopback port."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.server, self.thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"

    def _get(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as response:
            return str(response.read().decode())

    async def scrape(self) -> Scrape:
        """What a Prometheus server would read now."""
        return Scrape(await asyncio.to_thread(self._get))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@contextmanager
def exporter() -> Iterator[Exporter]:
    served = Exporter()
    try:
        yield served
    finally:
        served.close()


class Spans:
    """A tracer provider of the OpenTelemetry SDK whose ended spans are kept in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def ended(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def msgdel(self) -> list[ReadableSpan]:
        """The spans msgdel made, in the order they ended."""
        return [s for s in self.ended() if s.instrumentation_scope.name == "msgdel"]

    def named(self, suffix: str) -> list[ReadableSpan]:
        """FastStream's spans whose name ends with ``suffix`` (``"process"``, ``"create"``)."""
        return [s for s in self.ended() if s.name.endswith(f" {suffix}")]


def texts_of_span(span: ReadableSpan) -> list[str]:
    """Every text a span holds: its name, attribute values, status and event attributes."""
    texts: list[Any] = [span.name, *(span.attributes or {}).values(), span.status.description]
    for event in span.events:
        texts += [event.name, *(event.attributes or {}).values()]
    return [str(t) for t in texts if t is not None]
