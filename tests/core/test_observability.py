"""What the core logs and exposes for observability, with no broker and no metrics or tracing
package: one DEBUG line per adapter call, without secrets, and the Batcher's in-flight count.
(The Prometheus and OpenTelemetry specs run against real brokers: tests/redis, tests/nats.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import pytest

import msgdel
from msgdel import BaseAdapter, DeleteResult, Features, Outcome, Semantics
from msgdel.batcher import Batcher
from tests.core.adapters import BrokenAdapter, DictAdapter, Note


def registry_with(adapter: Any) -> msgdel.Registry:
    registry = msgdel.Registry(builtins=False)
    registry.register(Note, adapter)
    return registry


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("msgdel")]


async def test_every_adapter_call_logs_one_debug_line_and_nothing_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = registry_with(DictAdapter(a=b"1", b=b"2"))
    caplog.set_level(logging.DEBUG, logger="msgdel")

    await msgdel.delete_many([Note("a"), Note("b"), Note("gone")], registry=registry)
    await msgdel.delete(Note("a"), registry=registry)

    many, one = ours(caplog)
    assert {many.levelno, one.levelno} == {logging.DEBUG}
    assert (many.operation, many.broker, many.target, many.messages) == (  # type: ignore[attr-defined]
        "delete_many", "dict", "notes", 3,
    )  # fmt: skip
    assert many.outcome == "mixed"  # type: ignore[attr-defined]
    assert many.outcomes == {"deleted": 2, "already_gone": 1}  # type: ignore[attr-defined]
    assert one.outcome == "already_gone"  # type: ignore[attr-defined]


async def test_at_the_default_level_a_deletion_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = registry_with(DictAdapter(a=b"1"))
    caplog.set_level(logging.INFO)

    await msgdel.delete(Note("a"), registry=registry)

    assert ours(caplog) == []


async def test_a_failed_call_logs_the_error_class_as_its_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = registry_with(BrokenAdapter())
    caplog.set_level(logging.DEBUG, logger="msgdel")

    outcomes = await msgdel.delete_many([Note("a")], registry=registry, return_exceptions=True)

    assert isinstance(outcomes[0], msgdel.DeletionFailed)
    (line,) = ours(caplog)
    assert (line.broker, line.target, line.outcome) == ("broken", "", "DeletionFailed")  # type: ignore[attr-defined]


async def test_a_target_holding_a_url_password_is_logged_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = registry_with(DictAdapter(a=b"1"))
    caplog.set_level(logging.DEBUG, logger="msgdel")

    await msgdel.delete(Note("a", target="redis://user:hunter2@cache/notes"), registry=registry)

    (line,) = ours(caplog)
    assert line.target == "redis://***@cache/notes"  # type: ignore[attr-defined]
    assert "hunter2" not in line.getMessage()


class GatedAdapter(BaseAdapter):
    """Deletes once the test opens its gate, so a flush can be caught in flight."""

    features = Features("gated", Semantics.EXACT)

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    async def delete_many(self, messages: Sequence[Note], /) -> list[DeleteResult]:
        await self.gate.wait()
        return [
            DeleteResult("gated", m.target, (m.key,), Semantics.EXACT, Outcome.DELETED, 1)
            for m in messages
        ]


async def test_the_batcher_counts_flushes_in_flight_until_their_results_are_settled() -> None:
    adapter = GatedAdapter()
    batcher = Batcher(registry_with(adapter), max_size=2, max_delay=3600)
    futures = [await batcher.submit(Note(str(i))) for i in range(5)]  # two full batches sent
    await asyncio.sleep(0)

    assert (batcher.in_flight, batcher.pending) == (2, 5)

    adapter.gate.set()
    await batcher.close()
    assert (batcher.in_flight, batcher.pending) == (0, 0)
    assert all(f.result().deleted for f in futures)
