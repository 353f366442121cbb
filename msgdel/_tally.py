"""One pass over a call's outcomes, in the form the metrics and the traces both count from.

The observers run on every adapter call, so this pass is on the hot path of every
instrumented deletion: it runs once per report whatever the number of observers
(`tally_of`), and the usual call (every message of one target with one outcome) takes
one comprehension, not a loop of dictionary updates.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from msgdel.errors import DeletionFailed, MsgdelError
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

if TYPE_CHECKING:
    from msgdel.observe import DeletionReport

Answered = dict[tuple[Outcome, Semantics, str], list[int]]
"""`(outcome, semantics, target)` -> `[messages, records removed]`."""


class Tally:
    """What a call's outcomes add up to: `answered` (see `Answered`), `failed`
    (`(error class, retryable)` -> messages) and the first error (None if none failed)."""

    __slots__ = ("answered", "failed", "first_error")

    def __init__(self) -> None:
        self.answered: Answered = {}
        self.failed: dict[tuple[type[MsgdelError], bool], int] = {}
        self.first_error: MsgdelError | None = None


_last: tuple[weakref.ref[DeletionReport], Tally] | None = None
"""The tally of the report counted last: the next observer of the same report reuses it."""


def tally_of(report: DeletionReport) -> Tally:
    """The `tally` of `report`'s outcomes, counted once for all its observers."""
    global _last
    last = _last
    if last is not None and last[0]() is report:
        return last[1]
    counted = tally(report.outcomes)
    _last = (weakref.ref(report), counted)
    return counted


def tally(outcomes: Sequence[DeleteResult | MsgdelError]) -> Tally:
    """Count `outcomes` by outcome, semantics and target, and failures by error class."""
    counted = Tally()
    if not outcomes:
        return counted
    first = outcomes[0]
    if type(first) is DeleteResult:
        outcome, semantics, target = first.outcome, first.semantics, first.target
        if all(
            [
                type(r) is DeleteResult
                and r.outcome is outcome
                and r.semantics is semantics
                and r.target == target
                for r in outcomes
            ]
        ):
            results = cast("Sequence[DeleteResult]", outcomes)
            removed: int = sum([r.removed for r in results])
            counted.answered[outcome, semantics, target] = [len(results), removed]
            return counted
    answered, failed = counted.answered, counted.failed
    for item in outcomes:
        if isinstance(item, DeleteResult):
            key = (item.outcome, item.semantics, item.target)
            counts = answered.get(key)
            if counts is None:
                counts = answered[key] = [0, 0]
            counts[0] += 1
            counts[1] += item.removed
        else:
            if counted.first_error is None:
                counted.first_error = item
            error = (type(item), isinstance(item, DeletionFailed) and item.retryable)
            failed[error] = failed.get(error, 0) + 1
    return counted
