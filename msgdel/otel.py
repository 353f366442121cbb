"""OpenTelemetry spans of every deletion (the `msgdel[otel]` extra, opentelemetry-api).

```python
import msgdel.otel

msgdel.otel.instrument()   # msgdel.default_registry, the global tracer provider
```

One span per adapter call of `delete`, `delete_many` and a Batcher flush (and so of the
middleware), whatever the broker, named `delete <target>`, of kind `CLIENT`, following the
messaging semantic conventions where they fit. The span is made from the call's
[`DeletionReport`][msgdel.DeletionReport], after the call, with the call's own start and end times,
as a child of the current span: inside a FastStream handler under FastStream's telemetry
middleware, of the handler's `process` span. A call made outside any span for one message
(`DeleteMiddleware` deletes after FastStream's middleware has left the handler's context)
joins the message's own trace, from the trace context its headers carry; a call of several
messages links to theirs (its first [`MAX_LINKS`][msgdel.otel.MAX_LINKS] messages').
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TracerProvider

from msgdel._tally import tally_of
from msgdel.errors import redact
from msgdel.observe import DeletionReport
from msgdel.registry import Registry, default_registry
from msgdel.semantics import Outcome

__all__ = ["MAX_LINKS", "SYSTEMS", "Tracing", "instrument"]

MAX_LINKS = 16
"""A span of several messages links to the traces of its first `MAX_LINKS` messages (those
that carry one): a bounded cost per call, whatever the batch size."""

SYSTEMS: Mapping[str, str] = {"rabbit": "rabbitmq", "confluent": "kafka"}
"""`messaging.system` of the brokers whose msgdel name differs from the semantic
conventions' (and FastStream's own spans'); others are the adapter's `features.broker`."""

_SCOPE = "msgdel"
_SCHEMA = "https://opentelemetry.io/schemas/1.26.0"


class Tracing:
    """Makes one span per [`DeletionReport`][msgdel.DeletionReport]; an
    [`Observer`][msgdel.Observer].

    Attributes: `messaging.system`, `messaging.operation.name` (`"delete"`),
    `messaging.batch.message_count` (`delete_many` and Batcher flushes),
    `messaging.destination.name` (`with_target`, when every result names one target),
    `msgdel.broker`, `msgdel.operation` (`delete`, `delete_many`, `batch`),
    `msgdel.semantics`, `msgdel.outcome.<outcome>` (how many messages had it),
    `msgdel.removed`, and when any message failed `msgdel.failed`, `error.type` and an
    error status whose description, like the `exception` event's message, is redacted.
    """

    def __init__(
        self, tracer_provider: TracerProvider | None = None, *, with_target: bool = True
    ) -> None:
        if not isinstance(with_target, bool):
            raise TypeError(f"with_target must be True or False, got {with_target!r}")
        from msgdel import __version__

        self.tracer_provider = tracer_provider
        self.with_target = with_target
        self.tracer = trace.get_tracer(
            _SCOPE, __version__, tracer_provider=tracer_provider, schema_url=_SCHEMA
        )

    def __call__(self, report: DeletionReport) -> None:
        """Record `report` as one ended span (what
        [`msgdel.Registry.report`][msgdel.Registry.report] calls)."""
        end = time.time_ns()
        features = report.features
        outcomes = report.outcomes
        counted = tally_of(report)
        counts: dict[Outcome, int] = {}
        targets: set[str] = set()
        removed = 0
        for (outcome, _, target), (count, records) in counted.answered.items():
            counts[outcome] = counts.get(outcome, 0) + count
            targets.add(target)
            removed += records
        first_error = counted.first_error
        failed = sum(counted.failed.values())
        broker = features.broker
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEMS.get(broker, broker),
            "messaging.operation.name": "delete",
            "msgdel.broker": broker,
            "msgdel.operation": report.operation,
            "msgdel.semantics": features.semantics.value,
            "msgdel.removed": removed,
        }
        if report.operation != "delete":
            attributes["messaging.batch.message_count"] = len(outcomes)
        for key, count in counts.items():
            attributes[f"msgdel.outcome.{key.value}"] = count
        name = "delete"
        if self.with_target and len(targets) == 1:
            (target,) = targets
            attributes["messaging.destination.name"] = target = _redacted(target)
            name = f"delete {target}"
        if first_error is not None:
            attributes["msgdel.failed"] = failed
            attributes["error.type"] = type(first_error).__name__
        context, links = _parentage(report.messages)
        span = self.tracer.start_span(
            name,
            context=context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            links=links,
            start_time=end - round(report.seconds * 1e9),
        )
        if first_error is not None:
            text = redact(str(first_error))
            span.add_event(
                "exception",
                {
                    "exception.type": f"{type(first_error).__module__}."
                    f"{type(first_error).__qualname__}",
                    "exception.message": text,
                },
                timestamp=end,
            )
            span.set_status(Status(StatusCode.ERROR, f"{failed} of {len(outcomes)} failed: {text}"))
        span.end(end_time=end)

    def __repr__(self) -> str:
        return f"<msgdel.otel.Tracing with_target={self.with_target}>"


def _parentage(messages: tuple[Any, ...]) -> tuple[Any, list[Link] | None]:
    """The parent context (None: the current one) and the links of a span over `messages`.

    Under a current span: that span, no links. Otherwise one message: the trace context its
    headers carry (as the parent); several: links to theirs."""
    if trace.get_current_span().get_span_context().is_valid:
        return None, None
    propagator = propagate.get_global_textmap()
    fields = propagator.fields  # a set, as the API declares; a custom one may differ
    if not isinstance(fields, AbstractSet):
        fields = frozenset(fields)
    if len(messages) == 1:
        headers = _headers(messages[0], fields)
        return (None if headers is None else propagator.extract(headers)), None
    links: list[Link] = []
    for message in messages[:MAX_LINKS]:
        headers = _headers(message, fields)
        if headers is not None:
            found = trace.get_current_span(propagator.extract(headers)).get_span_context()
            if found.is_valid:
                links.append(Link(found))
    return None, links or None


def _headers(message: Any, fields: AbstractSet[str]) -> Mapping[str, Any] | None:
    """`message.headers` when it holds one of the propagator's `fields`."""
    headers = getattr(message, "headers", None)
    if (type(headers) is dict or isinstance(headers, Mapping)) and not fields.isdisjoint(headers):
        return headers
    return None


@functools.lru_cache(maxsize=1024)
def _redacted(target: str) -> str:
    """`target` without a URL's password or a token (cached: targets repeat)."""
    return redact(target)


def instrument(
    registry: Registry | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
    with_target: bool = True,
) -> Tracing:
    """Make a span of every deletion made through `registry` (default:
    `msgdel.default_registry`) with `tracer_provider` (default: the global one, looked up
    when each span is made); return the [`Tracing`][msgdel.otel.Tracing] observer.

    `with_target=False` keeps target names (streams, queues, topics) out of span names and
    attributes. Idempotent for one registry and tracer provider. Stop with
    `registry.remove_observer(tracing)`.
    """
    registry = default_registry if registry is None else registry
    if not isinstance(registry, Registry):
        raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
    for observer in registry.observers:
        if isinstance(observer, Tracing) and observer.tracer_provider is tracer_provider:
            if observer.with_target != with_target:
                raise ValueError(
                    f"this registry is already traced with with_target={observer.with_target}"
                )
            return observer
    tracing = Tracing(tracer_provider, with_target=with_target)
    registry.add_observer(tracing)
    return tracing
