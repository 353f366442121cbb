"""The round trip every broker's smoke test makes through FastStream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def round_trip(
    broker: Any,
    subscribe: Callable[[Callable[[str], Awaitable[None]]], Any],
    publish: Callable[[str], Awaitable[Any]],
    bodies: Sequence[str],
    *,
    expect: int | None = None,
    within: float = 10,
) -> list[str]:
    """Subscribe a handler with ``subscribe(handler)``, start ``broker``, ``publish`` every
    body, and return the bodies the handler received once ``expect`` (default: as many as
    published) arrived."""
    got: list[str] = []
    done = asyncio.Event()
    wanted = len(bodies) if expect is None else expect

    async def handle(body: str) -> None:
        got.append(body)
        if len(got) == wanted:
            done.set()

    subscribe(handle)
    async with broker:
        await broker.start()
        for body in bodies:
            await publish(body)
        await asyncio.wait_for(done.wait(), within)
    return got


def numbered(count: int) -> list[str]:
    """``["m0", "m1", ...]``."""
    return [f"m{i}" for i in range(count)]
