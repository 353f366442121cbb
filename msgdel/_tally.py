"""One pass over a call's outcomes, in the form the metrics and the traces both count from.

The observers run on every adapter call, so this pass is on the hot path of every
instrumented deletion: it runs once per report whatever the number of observers
(`tally_of`), and the usual call (every message of one target with one outcome, `uniform`)
takes one loop of identity checks, not dictionary updates. The core counts such a call in
the same pass that checks the adapter's results (`_dispatch`), and hands the tally on with
`remember`: 0.065 µs per result instead of 0.1 for the two passes.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

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
    last = _last
    if last is not None and last[0]() is report:
        return last[1]
    counted = tally(report.outcomes)
    remember(report, counted)
    return counted


def remember(report: DeletionReport, counted: Tally) -> None:
    """Make `counted` the tally `tally_of(report)` returns (it must be `report`'s)."""
    global _last
    _last = (weakref.ref(report), counted)


def uniform(outcomes: Sequence[object]) -> Tally | None:
    """The tally of the usual call, found in the one pass that also checks its outcomes.

    Not None only when every outcome is a `DeleteResult` (the class itself) with the first's
    outcome, semantics and target, and a well-formed `removed` (an `int`, at least 0): then
    every check the core makes of an adapter's results holds, and the tally equals
    `tally(outcomes)`. None otherwise: check and count them apart."""
    if not outcomes:
        return None
    first = outcomes[0]
    if type(first) is not DeleteResult:
        return None
    outcome, semantics, target = first.outcome, first.semantics, first.target
    if type(outcome) is not Outcome or type(semantics) is not Semantics:
        return None
    removed = 0
    for item in outcomes:
        if (
            type(item) is not DeleteResult
            or item.outcome is not outcome
            or item.semantics is not semantics
            or item.target != target
        ):
            return None
        count = item.removed
        if type(count) is not int or count < 0:
            return None
        removed += count
    counted = Tally()
    counted.answered[outcome, semantics, target] = [len(outcomes), removed]
    return counted


def tally(outcomes: Sequence[DeleteResult | MsgdelError]) -> Tally:
    """Count `outcomes` by outcome, semantics and target, and failures by error class."""
    usual = uniform(outcomes)
    if usual is not None:
        return usual
    counted = Tally()
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
