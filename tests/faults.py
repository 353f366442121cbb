"""Steps the adapters' stop/restart tests share: fail while the broker is down, then retry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs
import pytest

from msgdel import DeleteResult, DeletionFailed

Delete = Callable[[Any], Awaitable[DeleteResult]]


class Restartable(Protocol):
    """A test bed server: ``stop()`` and ``start()`` block until done."""

    def stop(self) -> None: ...
    def start(self) -> None: ...


@attrs.frozen
class AcrossRestart:
    """What deleting one message did while its broker was down, and after it came back."""

    failure: DeletionFailed
    """The error the delete raised while the broker was stopped."""
    seconds: float
    """How long that failing delete took."""
    result: DeleteResult
    """The same delete after the restart (retried as a caller would)."""


async def retried(delete: Delete, message: Any, attempts: int = 5) -> DeleteResult:
    """``delete(message)``, retried up to ``attempts`` times while it fails retryably."""
    for _ in range(attempts - 1):
        try:
            return await delete(message)
        except DeletionFailed as exc:
            if not exc.retryable:
                raise
    return await delete(message)


async def delete_across_restart(delete: Delete, message: Any, server: Restartable) -> AcrossRestart:
    """Stop ``server``, delete ``message`` (it must raise ``DeletionFailed``), start ``server``
    again, and delete the same message once more."""
    await asyncio.to_thread(server.stop)
    began = time.monotonic()
    try:
        with pytest.raises(DeletionFailed) as failed:
            await delete(message)
        seconds = time.monotonic() - began
    finally:
        await asyncio.to_thread(server.start)
    return AcrossRestart(failed.value, seconds, await retried(delete, message))
