"""Properties of what takes arbitrary input in the core: the message list of ``delete_many``
(any mix of repeats, in any order) and the ids a result is built from."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

import msgdel
from msgdel import DeleteResult, Outcome, Registry, Semantics
from tests.core.adapters import DictAdapter, Note


@given(picks=st.lists(st.integers(min_value=0, max_value=5), max_size=30))
def test_any_mix_of_repeats_is_sent_once_each_and_counted_once(picks: list[int]) -> None:
    pool = [Note(f"k{i}") for i in range(6)]
    adapter = DictAdapter(**{n.key: b"x" for n in pool[:4]})  # k4, k5 are not stored
    registry = Registry(builtins=False)
    registry.register(Note, adapter)
    messages = [pool[i] for i in picks]

    results = asyncio.run(msgdel.delete_many(messages, registry=registry))

    distinct = list(dict.fromkeys(picks))
    assert adapter.calls == ([("delete_many", [f"k{i}" for i in distinct])] if picks else [])
    assert [r.ids for r in results] == [(f"k{i}",) for i in picks]
    assert sum(r.removed for r in results) == len({i for i in picks if i < 4})
    seen: set[int] = set()
    for pick, result in zip(picks, results):
        first = pick not in seen
        seen.add(pick)
        expected = Outcome.DELETED if first and pick < 4 else Outcome.ALREADY_GONE
        assert result.outcome is expected


ids = st.one_of(
    st.text(max_size=20),
    st.binary(max_size=20).filter(lambda b: _decodes(b)),
    st.integers(min_value=0, max_value=2**63),
)


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@given(given_ids=st.lists(ids, max_size=10))
def test_result_ids_are_the_given_ids_as_strings_in_order(given_ids: list[object]) -> None:
    result = DeleteResult("b", "t", given_ids, Semantics.EXACT, Outcome.DELETED, 1)
    assert result.ids == tuple(i.decode() if isinstance(i, bytes) else str(i) for i in given_ids)
    assert all(type(i) is str for i in result.ids)
