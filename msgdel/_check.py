"""Argument checks shared by the core and the adapters: each raises at construction, with an
error that names the argument, what it must be, and what it got."""

from __future__ import annotations

import math


def flag(name: str, value: object) -> bool:
    """`value` when it is `True` or `False`; `TypeError` for anything else (`"no"` is
    truthy, so a string is refused rather than guessed)."""
    if type(value) is not bool:
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def at_least(name: str, value: object, minimum: int) -> int:
    """`value` when it is an integer >= `minimum` (not a bool); `ValueError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def seconds(name: str, value: object, *, positive: bool = False) -> float:
    """`value` as a float when it is a finite number of seconds (> 0 when `positive`,
    else >= 0); `ValueError` otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
        or (positive and value == 0)
    ):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be a finite number of seconds {bound}, got {value!r}")
    return float(value)
