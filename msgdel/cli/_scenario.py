"""What the demo needs from each broker: a target to fill, a FastStream app that consumes it,
and the broker's own state, read with the broker's client and never through msgdel."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import attrs

if TYPE_CHECKING:
    from types import TracebackType

    from faststream import FastStream

    from msgdel.faststream import DeleteMiddleware

CHUNK = 64
"""Messages published concurrently, one chunk after the other (under redis-py's default pool
of 100 connections)."""


@attrs.frozen
class Figure:
    """One number the broker reports, e.g. the stream's length."""

    label: str
    value: int | None
    """None where the broker cannot tell (Redis may not know a group's lag)."""
    left_behind: bool
    """Whether a non-zero value after the demo means something is left (a pending entry)
    rather than progress (an acknowledgement floor)."""


class Scenario(Protocol):
    """One broker's part of the demo; used as `async with`, which opens and closes its own
    client connection for `prepare` and `state`."""

    title: str
    """What the figures describe: `stream msgdel-demo, consumer group demo`."""

    async def __aenter__(self) -> Scenario: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def prepare(self) -> None:
        """Create the target and its consumer (group), empty."""

    async def publish(self, count: int, advance: Callable[[int], None]) -> None:
        """Publish `count` messages through a FastStream producer, calling `advance(n)`
        as each chunk of `n` is stored."""

    def app(self, middleware: DeleteMiddleware, handled: Callable[[], None]) -> FastStream:
        """The consuming FastStream app: its broker has `middleware`; its handler calls
        `handled()` for each message."""

    async def state(self) -> list[Figure]:
        """The broker's figures for the target and its consumer, read now."""
