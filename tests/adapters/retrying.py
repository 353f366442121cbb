"""Retrying a deletion as a caller does: again while the failure says retrying can succeed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from msgdel import DeleteResult, DeletionFailed


async def retried(
    delete: Callable[[Any], Awaitable[DeleteResult]], message: Any, attempts: int = 5
) -> DeleteResult:
    """``delete(message)``, retried up to ``attempts`` times while it fails retryably."""
    for _ in range(attempts - 1):
        try:
            return await delete(message)
        except DeletionFailed as exc:
            if not exc.retryable:
                raise
    return await delete(message)
