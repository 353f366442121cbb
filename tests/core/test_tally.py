"""What the metrics and traces count from (`msgdel._tally`): every outcome of a call counted once,
by outcome, semantics and target, and every failure by error class and retryability."""

from __future__ import annotations

import collections
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from msgdel import DeleteResult, DeletionFailed, MsgdelError, NotDeletable, Outcome, Semantics
from msgdel._tally import tally, uniform

results = st.builds(
    DeleteResult,
    broker=st.just("redis"),
    target=st.sampled_from(["a", "b"]),
    ids=st.just(("1-0",)),
    semantics=st.sampled_from([Semantics.EXACT, Semantics.PREFIX]),
    outcome=st.sampled_from([Outcome.DELETED, Outcome.ALREADY_GONE]),
    removed=st.integers(min_value=0, max_value=3),
)
errors = st.one_of(
    st.builds(DeletionFailed, st.just("refused"), retryable=st.booleans()),
    st.builds(NotDeletable, st.just("not stored")),
)
outcomes = st.lists(st.one_of(results, results, errors), max_size=30)


def counted_one_by_one(outcomes: list[Any]) -> tuple[dict[Any, list[int]], dict[Any, int]]:
    answered: dict[Any, list[int]] = collections.defaultdict(lambda: [0, 0])
    failed: collections.Counter[Any] = collections.Counter()
    for o in outcomes:
        if isinstance(o, DeleteResult):
            answered[o.outcome, o.semantics, o.target][0] += 1
            answered[o.outcome, o.semantics, o.target][1] += o.removed
        else:
            failed[type(o), isinstance(o, DeletionFailed) and o.retryable] += 1
    return dict(answered), dict(failed)


@given(outcomes)
def test_a_tally_counts_every_outcome_once(outcomes: list[DeleteResult | MsgdelError]) -> None:
    counted = tally(outcomes)
    assert (counted.answered, counted.failed) == counted_one_by_one(outcomes)
    first_error = next((o for o in outcomes if not isinstance(o, DeleteResult)), None)
    assert counted.first_error is first_error


@given(outcomes)
def test_the_usual_call_is_counted_in_one_pass_the_same(
    outcomes: list[DeleteResult | MsgdelError],
) -> None:
    """`uniform` answers exactly for a call whose results all share outcome, semantics and
    target, and then as `tally` does."""
    usual = uniform(outcomes)
    keys = {(o.outcome, o.semantics, o.target) if isinstance(o, DeleteResult) else o
            for o in outcomes}  # fmt: skip
    one_key = len(keys) == 1 and all(isinstance(o, DeleteResult) for o in outcomes)
    assert (usual is not None) == one_key
    if usual is not None:
        assert (usual.answered, usual.failed, usual.first_error) == (
            *counted_one_by_one(outcomes),
            None,
        )


def test_a_malformed_result_is_not_the_usual_call() -> None:
    """The core relies on `uniform` to check the results it counts."""
    good = DeleteResult("redis", "a", ("1-0",), Semantics.EXACT, Outcome.DELETED, 1)
    for bad in (
        DeleteResult("redis", "a", ("1-0",), Semantics.EXACT, Outcome.DELETED, -1),
        DeleteResult("redis", "a", ("1-0",), Semantics.EXACT, Outcome.DELETED, True),
        DeleteResult("redis", "a", ("1-0",), Semantics.EXACT, "deleted", 1),  # type: ignore[arg-type]
    ):
        assert uniform([good, bad]) is None
        assert uniform([bad, bad]) is None
