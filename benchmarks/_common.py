"""What every benchmark shares: interleaved rounds, medians and ranges, and figure lines.

A benchmark runs its arms interleaved (``Rounds.order``: the arms rotate, so none always goes
first and a burst of load from elsewhere hits every arm alike), records one value per arm and
round, prints each arm's median, range and rounds (``Rounds.report``), and ends with one
figure line per figure it promises (``figure``), which ``run_all.py`` collects::

    FIGURE {"figure": "...", "value": 0.72, "goal": ">= 0.9", "unit": "x", ...}

``goal`` is ``">= N"``, ``"<= N"``, ``"== N"`` or ``null`` (a figure printed for information).
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import operator
import signal
import statistics
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the test bed (tests.testbed) and msgdel from this checkout
    sys.path.insert(0, str(ROOT))

FIGURE_PREFIX = "FIGURE "
"""Every figure line starts with this, then one JSON object."""

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
}


def goal_met(value: float, goal: str | None) -> bool | None:
    """Whether ``value`` meets ``goal`` (``">= 0.9"``, ``"<= 0.5"``, ``"== 3"``); None for no
    goal. A value that is not a number (NaN: not measured) never meets a goal."""
    if goal is None:
        return None
    op, _, target = goal.partition(" ")
    if op not in _OPERATORS:
        raise ValueError(f"a goal is '>= N', '<= N' or '== N', got {goal!r}")
    return not math.isnan(value) and _OPERATORS[op](value, float(target))


def figure(
    name: str,
    value: float,
    goal: str | None,
    unit: str,
    *,
    low: float | None = None,
    high: float | None = None,
    note: str = "",
) -> None:
    """Record one figure: ``value`` (the median over rounds, with its range ``low`` to
    ``high`` when there are rounds) against ``goal``. The figure lines are printed together
    when the benchmark ends (also when it fails: those measured so far), for ``run_all.py``."""
    line = {
        "figure": name,
        "value": value,
        "goal": goal,
        "unit": unit,
        "low": low,
        "high": high,
        "met": goal_met(value, goal),
        "note": note,
    }
    _figures.append(line)


_figures: list[dict[str, Any]] = []


@atexit.register
def _print_figures() -> None:
    if _figures:
        print()
    for line in _figures:
        print(FIGURE_PREFIX + json.dumps(line), flush=True)


def parse_figures(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The figure lines among ``lines``, as dicts (other lines are ignored)."""
    return [
        json.loads(line[len(FIGURE_PREFIX) :]) for line in lines if line.startswith(FIGURE_PREFIX)
    ]


class Ratio:
    """The median of per-round ratios and their range."""

    def __init__(self, ratios: Sequence[float]) -> None:
        self.each = list(ratios)
        self.median = statistics.median(self.each)
        self.low, self.high = min(self.each), max(self.each)

    def __str__(self) -> str:
        return f"{self.median:.2f}x (rounds {self.low:.2f}-{self.high:.2f})"

    def figure(self, name: str, goal: str | None, note: str = "") -> None:
        figure(name, self.median, goal, "x", low=self.low, high=self.high, note=note)


class Rounds:
    """One value per arm and round (a rate, or seconds): medians, ranges, per-round ratios."""

    def __init__(self, arms: Sequence[str]) -> None:
        self.arms = list(arms)
        self.values: dict[str, list[float]] = {arm: [] for arm in self.arms}

    def order(self, number: int) -> list[str]:
        """The arms in the order round ``number`` runs them: rotated by one each round."""
        shift = number % len(self.arms)
        return self.arms[shift:] + self.arms[:shift]

    def add(self, arm: str, value: float) -> None:
        self.values[arm].append(value)

    def median(self, arm: str) -> float:
        return statistics.median(self.values[arm])

    def ratio(self, arm: str, baseline: str) -> Ratio:
        """``arm`` over ``baseline``, round by round."""
        return Ratio([a / b for a, b in zip(self.values[arm], self.values[baseline])])

    def report(
        self,
        title: str,
        unit: str,
        what: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        digits: int = 0,
    ) -> None:
        """Print each arm's median, range and rounds (and what it does at the broker)."""
        rounds = len(next(iter(self.values.values()), []))
        print(f"\n{title} ({rounds} rounds, interleaved; median, range, each round)")
        labels = labels or {}
        width = max(len(labels.get(arm, arm)) for arm in self.arms)
        for arm in self.arms:
            values = self.values[arm]
            if not values:
                continue
            each = " ".join(f"{v:,.{digits}f}" for v in values)
            print(
                f"  {labels.get(arm, arm):<{width}}  {statistics.median(values):>10,.{digits}f} "
                f"{unit}  ({min(values):,.{digits}f}-{max(values):,.{digits}f}; {each})"
            )
        if what:
            describe(what, labels)


def describe(what: Mapping[str, str], labels: Mapping[str, str] | None = None) -> None:
    """Print what each arm does at the broker."""
    labels = labels or {}
    print("  what each arm does at the broker:")
    for arm, text in what.items():
        print(f"    {labels.get(arm, arm)}: {text}")


def interleaved(rounds: Rounds, count: int) -> Iterator[tuple[int, str]]:
    """``(round, arm)`` for ``count`` rounds, the arms rotated round by round."""
    for number in range(count):
        for arm in rounds.order(number):
            yield number, arm


def parser(doc: str | None, rounds: bool = True) -> argparse.ArgumentParser:
    """An argument parser described by the module docstring, with ``--quick`` (fewer messages
    and rounds: for a smoke run, not for figures to quote) and ``--rounds``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if rounds:
        parser.add_argument("--rounds", type=int, help="interleaved rounds")
    parser.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    return parser


def sizes(args: argparse.Namespace, **defaults: tuple[Any, Any]) -> argparse.Namespace:
    """Fill each option left unset (None) with its ``(full, quick)`` default."""
    for dest, (full, quick) in defaults.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, quick if args.quick else full)
    return args


def stop_on_sigterm() -> None:
    """Turn SIGTERM (``run_all.py``'s timeout, ``timeout(1)``) into SystemExit, so the
    benchmark's ``finally`` blocks stop the brokers it started."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
