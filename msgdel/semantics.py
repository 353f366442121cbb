"""What an adapter's delete does at the broker, and what happened on one call."""

from __future__ import annotations

import enum


class Semantics(str, enum.Enum):
    """What an adapter's delete does at the broker."""

    EXACT = "exact"
    """Exactly this message is removed; its neighbours are untouched."""
    PREFIX = "prefix"
    """This message and everything before it in its partition are removed."""
    TOMBSTONE = "tombstone"
    """The key is marked deleted; the broker removes it later (compaction)."""
    NOT_STORED = "not_stored"
    """The broker never kept the message, or removed it when it was read."""

    def satisfies(self, required: Semantics) -> bool:
        """Whether a delete with these semantics meets the caller's `require`.

        `EXACT` is met by `EXACT` and `NOT_STORED` (nothing else is removed);
        `PREFIX` also by `PREFIX` (the message is gone now, maybe with others);
        `TOMBSTONE` by anything (the message is gone now or later);
        `NOT_STORED` only by `NOT_STORED`.
        """
        return self in _SATISFIES[required]


_SATISFIES: dict[Semantics, frozenset[Semantics]] = {
    Semantics.EXACT: frozenset({Semantics.EXACT, Semantics.NOT_STORED}),
    Semantics.PREFIX: frozenset({Semantics.EXACT, Semantics.NOT_STORED, Semantics.PREFIX}),
    Semantics.TOMBSTONE: frozenset(Semantics),
    Semantics.NOT_STORED: frozenset({Semantics.NOT_STORED}),
}


class Outcome(str, enum.Enum):
    """What happened at the broker on this call."""

    DELETED = "deleted"
    """The broker removed the message on this call."""
    ALREADY_GONE = "already_gone"
    """The message was no longer stored (deleted before, popped on read, truncated)."""
    NOTHING_STORED = "nothing_stored"
    """The broker never stores such messages (pub/sub, core NATS, non-retained MQTT)."""
    DEFERRED = "deferred"
    """Accepted, but the broker keeps the message until a condition holds."""
    SKIPPED = "skipped"
    """Nothing was sent: an in-memory test broker's message, or a dry run."""
