"""attrs validators for the names a caller gives (stream keys, topics, sequences), with errors
that name the bad value and say what is expected: shared by the addresses and the erasure
targets."""

from __future__ import annotations

import re
from typing import Any

import attrs


def text(pattern: str, expected: str) -> Any:
    """An attrs validator: a `str` matching `pattern` in full, else an error naming `expected`."""
    compiled = re.compile(pattern)

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        what = f"{type(instance).__name__}.{attribute.name}"
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str ({expected}), got {value!r}")
        if not compiled.fullmatch(value):
            raise ValueError(f"{what} must be {expected}, got {value!r}")

    return check


def number(minimum: int) -> Any:
    """An attrs validator: an `int` (not a bool) of at least `minimum`."""

    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        what = f"{type(instance).__name__}.{attribute.name}"
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{what} must be an int >= {minimum}, got {value!r}")
        if value < minimum:
            raise ValueError(f"{what} must be >= {minimum}, got {value}")

    return check


JETSTREAM_NAME = text(r"[^\s.*>/\\:]+", "a JetStream stream name (no spaces, '.', '*', '>', ':')")
KAFKA_TOPIC = text(r"[A-Za-z0-9._-]{1,249}", "a Kafka topic name (letters, digits, '._-')")
