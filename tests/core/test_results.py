"""Results built many at once (the bulk paths' `msgdel._results.results`) are the public
`DeleteResult`: equal to, hashing like and as immutable as the constructor's."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from msgdel import DeleteResult, Outcome, Semantics
from msgdel._results import results

ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3).map(tuple)
rows = st.lists(
    st.tuples(ids, st.sampled_from(list(Outcome)), st.integers(min_value=0, max_value=5)),
    max_size=40,
)


@given(
    broker=st.sampled_from(["redis", "nats", "kafka"]),
    target=st.text(max_size=20),
    semantics=st.sampled_from(list(Semantics)),
    rows=rows,
)
def test_each_result_equals_what_the_constructor_builds(
    broker: str, target: str, semantics: Semantics, rows: list[tuple[tuple[str, ...], Outcome, int]]
) -> None:
    made = results(
        broker, target, [r[0] for r in rows], semantics, [r[1] for r in rows], [r[2] for r in rows]
    )
    expected = [DeleteResult(broker, target, i, semantics, o, n) for i, o, n in rows]
    assert made == expected
    assert [hash(r) for r in made] == [hash(r) for r in expected]
    assert [repr(r) for r in made] == [repr(r) for r in expected]
    assert all(type(r) is DeleteResult for r in made)


def test_a_result_built_in_bulk_is_frozen_and_complete() -> None:
    (result,) = results("redis", "s", [("1-0",)], Semantics.EXACT, [Outcome.DELETED], [1])
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.outcome = Outcome.SKIPPED  # type: ignore[misc]
    assert attrs.asdict(result) == {
        "broker": "redis", "target": "s", "ids": ("1-0",), "semantics": Semantics.EXACT,
        "outcome": Outcome.DELETED, "removed": 1,
    }  # fmt: skip
    assert result.deleted


def test_columns_of_different_lengths_are_refused_before_anything_is_built() -> None:
    with pytest.raises(ValueError, match="2 ids, 1 outcomes, 2 counts"):
        results("redis", "s", [("1-0",), ("2-0",)], Semantics.EXACT, [Outcome.DELETED], [1, 1])
