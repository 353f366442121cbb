"""How the Kafka adapters retry a request: until the call's deadline, never past it.

The retry loop is shared by both Kafka adapters and imports neither client, so it is specified
here with plain coroutines and runs in the core envs (this file's name avoids "kafka", which
would collect it only where aiokafka is installed); the conformance kit's broker-restart case
(tests/kafka_family.py) drives it against a stopped broker.
"""

from __future__ import annotations

import asyncio

import pytest

from msgdel import DeletionFailed, MsgdelError, UnsupportedDeletion
from msgdel.adapters import _kafka_common
from msgdel.adapters._kafka_common import Deadline, settle_each, with_retries


@pytest.fixture(autouse=True)
def short_delays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kafka_common, "RETRY_DELAYS", (0.001, 0.002, 0.005))


class Flaky:
    """A request that fails ``failures`` times with ``error``, then answers ``"done"``."""

    def __init__(self, failures: int, error: DeletionFailed) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


async def test_a_retriable_failure_is_retried_past_the_listed_delays_until_it_succeeds() -> None:
    request = Flaky(10, DeletionFailed("leader moved", retryable=True))

    assert await with_retries(request, Deadline.after(5)) == "done"
    assert request.calls == 11  # more attempts than RETRY_DELAYS has entries


async def test_a_failure_that_is_not_retriable_is_raised_at_once() -> None:
    request = Flaky(1, DeletionFailed("not authorized", retryable=False))

    with pytest.raises(DeletionFailed, match="not authorized"):
        await with_retries(request, Deadline.after(5))
    assert request.calls == 1


async def test_a_retriable_failure_that_outlasts_the_deadline_is_raised_by_it() -> None:
    request = Flaky(10**9, DeletionFailed("broker restarting", retryable=True))
    began = asyncio.get_running_loop().time()

    with pytest.raises(DeletionFailed, match="broker restarting") as failed:
        await with_retries(request, Deadline.after(0.2))

    assert failed.value.retryable
    assert asyncio.get_running_loop().time() - began < 5  # ended by the deadline, not a count
    assert request.calls > 3


class ScriptedDeadline:
    """A deadline whose remaining seconds are read from a script, one value per look."""

    timeout = 1.0

    def __init__(self, remaining: list[float]) -> None:
        self._remaining = iter(remaining)

    def remaining(self) -> float:
        return next(self._remaining)


async def test_a_pause_that_overruns_the_deadline_raises_the_last_failure() -> None:
    request = Flaky(10**9, DeletionFailed("broker restarting", retryable=True))
    # time left before the call, when deciding to pause, and after the pause: none
    deadline = ScriptedDeadline([1.0, 1.0, 0.0])

    with pytest.raises(DeletionFailed, match="broker restarting") as failed:
        await with_retries(request, deadline)  # type: ignore[arg-type]

    assert failed.value.retryable
    assert request.calls == 1  # no attempt after the deadline, and no "did not answer"


async def test_an_unanswered_request_is_cancelled_at_the_deadline() -> None:
    async def hangs() -> str:
        await asyncio.sleep(3600)
        return "never"

    with pytest.raises(DeletionFailed, match=r"did not answer within 0\.1s") as failed:
        await with_retries(hangs, Deadline.after(0.1))
    assert failed.value.retryable


class PerPartition:
    """A request answering each key from a script: ``answers[key]`` is a list of answers,
    one per attempt that asks for the key (the last one repeats)."""

    def __init__(self, answers: dict[str, list[int | MsgdelError]]) -> None:
        self.answers = answers
        self.asked: list[list[str]] = []

    async def __call__(self, keys: list[str]) -> dict[str, int | MsgdelError]:
        self.asked.append(keys)
        attempt = sum(1 for asked in self.asked if keys[0] in asked) - 1
        return {k: self.answers[k][min(attempt, len(self.answers[k]) - 1)] for k in keys}


async def test_only_the_keys_that_failed_retryably_are_asked_again() -> None:
    moved = DeletionFailed("leader moved", retryable=True)
    refused = UnsupportedDeletion("compact-only topic")
    request = PerPartition({"a": [1], "b": [moved, 2], "c": [refused]})

    answers = await settle_each(request, ["a", "b", "c"], Deadline.after(5))

    assert answers == {"a": 1, "b": 2, "c": refused}
    assert request.asked == [["a", "b", "c"], ["b"]]


async def test_keys_still_failing_at_the_deadline_get_that_error_the_others_keep_theirs() -> None:
    down = DeletionFailed("broker restarting", retryable=True)
    request = PerPartition({"a": [1], "b": [down]})

    answers = await settle_each(request, ["a", "b"], Deadline.after(0.2))

    assert answers["a"] == 1
    assert isinstance(answers["b"], DeletionFailed)
    assert answers["b"].retryable
