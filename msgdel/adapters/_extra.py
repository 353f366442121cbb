"""The error an adapter module raises when its broker client is not installed."""

from __future__ import annotations


def missing(extra: str) -> ImportError:
    """An ImportError that names the msgdel extra installing the client of `extra`'s broker."""
    return ImportError(
        f"msgdel.adapters.{extra} needs its broker client, which the {extra!r} extra installs: "
        f"pip install 'msgdel[{extra}]'"
    )
