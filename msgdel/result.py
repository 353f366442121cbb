"""The immutable record of one deletion."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from msgdel.semantics import Outcome, Semantics


def _to_ids(ids: Iterable[object]) -> tuple[str, ...]:
    if type(ids) is tuple and len(ids) == 1 and type(ids[0]) is str:
        return ids  # type: ignore[return-value]  # the common case, kept cheap
    return tuple(i.decode() if isinstance(i, bytes) else str(i) for i in ids)


@attrs.frozen(slots=True)
class DeleteResult:
    """What one delete did at the broker.

    `ids` are the broker's own message ids as strings (stream entry ids, offsets,
    stream sequences, delivery tags); `removed` counts the records the broker reports
    gone on this call.
    """

    broker: str
    """The broker family: `"redis"`, `"rabbit"`, `"kafka"`, `"nats"`, `"mqtt"`, ..."""
    target: str
    """Where the message lived: stream key, queue, `topic[partition]`, JetStream stream, topic."""
    ids: tuple[str, ...] = attrs.field(converter=_to_ids)
    semantics: Semantics
    outcome: Outcome
    removed: int = 0

    @property
    def deleted(self) -> bool:
        """True when the broker removed something on this call."""
        return self.outcome is Outcome.DELETED
