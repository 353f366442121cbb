"""Wait for state a broker reaches asynchronously, instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T | Awaitable[T]], expected: T, *, within: float = 10.0
) -> T:
    """Call ``probe`` (awaiting what it returns, if awaitable) until its value equals
    ``expected`` or ``within`` seconds passed, and return the last value.

    For a requeue, dead-lettering, an acknowledgement or a flush to disk that the broker does
    after answering: assert on the value returned, so a timeout shows what was last seen.
    """
    deadline = time.monotonic() + within
    while True:
        value: Any = probe()
        if inspect.isawaitable(value):
            value = await value
        if value == expected or time.monotonic() >= deadline:
            return cast(T, value)
        await asyncio.sleep(0.02)
