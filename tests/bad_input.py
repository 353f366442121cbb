"""The bad-input matrix: one row per wrong argument or hostile object, one check for all.

A row names a call that must fail before anything reaches a broker, the error class it must
raise, and words of the error that tell the caller what to do instead. Every backend adds its
own rows (its adapter's options) in ``tests/<backend>/test_bad_input.py``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import pytest


@attrs.frozen
class Refused:
    """``call()`` raises ``error`` whose text holds every one of ``says`` (case-insensitive)."""

    name: str
    call: Callable[[], Any]
    error: type[BaseException]
    says: tuple[str, ...]
    secret: str | None = None
    """A credential the call was given, which must not appear in the error."""


def rows(*refused: Refused) -> Any:
    """``refused`` as pytest parameters, each with its name as id."""
    return pytest.mark.parametrize("row", [pytest.param(r, id=r.name) for r in refused])


async def check(row: Refused) -> BaseException:
    """Run ``row``'s call and check the error it raises; return that error."""
    with pytest.raises(row.error) as caught:
        await _called(row.call)
    text = str(caught.value).lower()
    for words in row.says:
        assert words.lower() in text, f"{words!r} not in {caught.value}"
    if row.secret is not None:
        assert row.secret not in str(caught.value)
        assert row.secret not in repr(caught.value)
    return caught.value


async def _called(call: Callable[[], Any]) -> Any:
    result = call()
    return await result if inspect.isawaitable(result) else result
