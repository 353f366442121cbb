"""Typed addresses: a stored message named by where it lives, for [`delete_at`][msgdel.delete_at].

Each address is an immutable value, checked when it is made: a malformed one raises
`ValueError` (or `TypeError`) naming the bad value, before anything is sent.

```python
from msgdel.address import KafkaOffset, RedisEntry

RedisEntry("orders", "1700000000000-0", group="billing")
KafkaOffset("orders", partition=0, offset=41)
RedisEntry.parse("orders:1700000000000-0")  # the command line's form
```

A RabbitMQ queue has no address: RabbitMQ cannot remove a given message except by consuming
and settling it.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from msgdel._names import JETSTREAM_NAME, KAFKA_TOPIC, number, text

__all__ = ["Address", "JetStreamSequence", "KafkaOffset", "KvKey", "RedisEntry", "RetainedTopic"]


def _split(cls: type[Address], text: object, parts: int, form: str) -> list[str]:
    """`text` split at its last `parts - 1` colons, or a `ValueError` showing `form`."""
    if not isinstance(text, str):
        raise TypeError(f"{cls.__name__}.parse takes a str like {form!r}, got {text!r}")
    pieces = text.rsplit(":", parts - 1)
    if len(pieces) != parts or not all(pieces):
        raise ValueError(f"{text!r} is not a {cls.__name__}: write it as {form!r}")
    return pieces


def _integer(cls: type[Address], text: str, piece: str, name: str, form: str) -> int:
    if not (piece.isascii() and piece.isdigit()):
        raise ValueError(f"{text!r} is not a {cls.__name__}: {name} {piece!r} is not a number "
                         f"(write it as {form!r})")  # fmt: skip
    return int(piece)


@attrs.frozen
class Address:
    """Where one stored message lives. Subclasses name their broker and their URL schemes."""

    broker: ClassVar[str]
    """The broker family, as in [`DeleteResult.broker`][msgdel.DeleteResult.broker]."""
    schemes: ClassVar[tuple[str, ...]]
    """The URL schemes of a connection this address can be deleted on."""

    @property
    def target(self) -> str:
        """The result's `target`: the stream, topic-partition, bucket or topic."""
        raise NotImplementedError

    @property
    def id(self) -> str:
        """The result's id: entry id, sequence, offset, key or topic."""
        raise NotImplementedError

    @classmethod
    def parse(cls, text: str) -> Address:
        """The address written as `text` (the form `str()` gives)."""
        raise NotImplementedError


_STREAM_ID = r"[0-9]{1,20}-[0-9]{1,20}"


@attrs.frozen
class RedisEntry(Address):
    """A Redis stream entry. With `group`, deleting also acknowledges it in that consumer
    group (`XACKDEL`); without, it is deleted outside any group (`XDELEX`). By default it
    is kept (`DEFERRED`) while any consumer group still needs it."""

    broker: ClassVar[str] = "redis"
    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "unix")

    stream: str = attrs.field(validator=text(r"(?s).+", "a stream key (not empty)"))
    entry_id: str = attrs.field(
        validator=text(
            _STREAM_ID, "a stream entry id such as '1700000000000-0' (two 64-bit numbers)"
        )
    )

    @entry_id.validator
    def _fits_64_bits(self, attribute: attrs.Attribute[str], value: str) -> None:
        if any(int(part) >= 2**64 for part in value.split("-")):
            raise ValueError(
                f"RedisEntry.entry_id must be a stream entry id such as '1700000000000-0' "
                f"(two 64-bit numbers), got {value!r}"
            )

    group: str | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(text(r"(?s).+", "a consumer group name or None")),
    )

    @property
    def target(self) -> str:
        return self.stream

    @property
    def id(self) -> str:
        return self.entry_id

    @classmethod
    def parse(cls, text: str, *, group: str | None = None) -> RedisEntry:
        """`STREAM:ENTRY_ID`, split at the last colon (a stream key may hold colons)."""
        stream, entry_id = _split(cls, text, 2, "STREAM:1700000000000-0")
        return cls(stream, entry_id, group=group)

    def __str__(self) -> str:
        return f"{self.stream}:{self.entry_id}"


@attrs.frozen
class JetStreamSequence(Address):
    """A message of a JetStream stream, by its stream sequence. By default it is kept
    (`DEFERRED`) while a consumer of the stream has not acknowledged it."""

    broker: ClassVar[str] = "nats"
    schemes: ClassVar[tuple[str, ...]] = ("nats", "tls", "ws", "wss")

    stream: str = attrs.field(validator=JETSTREAM_NAME)
    sequence: int = attrs.field(validator=number(1))

    @property
    def target(self) -> str:
        return self.stream

    @property
    def id(self) -> str:
        return str(self.sequence)

    @classmethod
    def parse(cls, text: str) -> JetStreamSequence:
        """`STREAM:SEQUENCE`."""
        form = "STREAM:SEQUENCE"
        stream, seq = _split(cls, text, 2, form)
        return cls(stream, _integer(cls, text, seq, "sequence", form))

    def __str__(self) -> str:
        return f"{self.stream}:{self.sequence}"


@attrs.frozen
class KvKey(Address):
    """A key of a NATS KV bucket."""

    broker: ClassVar[str] = "nats"
    schemes: ClassVar[tuple[str, ...]] = JetStreamSequence.schemes

    bucket: str = attrs.field(
        validator=text(r"[A-Za-z0-9_-]+", "a KV bucket name (letters, digits, '_', '-')")
    )
    key: str = attrs.field(
        validator=text(
            r"[-/_=A-Za-z0-9]+(\.[-/_=A-Za-z0-9]+)*",
            "a KV key (letters, digits and '-/_=', dot-separated tokens)",
        )
    )

    @property
    def target(self) -> str:
        return self.bucket

    @property
    def id(self) -> str:
        return self.key

    @classmethod
    def parse(cls, text: str) -> KvKey:
        """`BUCKET:KEY`."""
        bucket, key = _split(cls, text, 2, "BUCKET:KEY")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{self.bucket}:{self.key}"


@attrs.frozen
class KafkaOffset(Address):
    """A record of a Kafka partition, by offset. Kafka deletes a prefix: deleting it removes
    every earlier record of the partition too (semantics PREFIX), and by default no record
    another consumer group has not committed past (`DEFERRED`)."""

    broker: ClassVar[str] = "kafka"
    schemes: ClassVar[tuple[str, ...]] = ("kafka",)

    topic: str = attrs.field(validator=KAFKA_TOPIC)
    partition: int = attrs.field(validator=number(0))
    offset: int = attrs.field(validator=number(0))

    @property
    def target(self) -> str:
        return f"{self.topic}[{self.partition}]"

    @property
    def id(self) -> str:
        return str(self.offset)

    @classmethod
    def parse(cls, text: str) -> KafkaOffset:
        """`TOPIC:PARTITION:OFFSET`."""
        form = "TOPIC:PARTITION:OFFSET"
        topic, partition, offset = _split(cls, text, 3, form)
        return cls(
            topic,
            _integer(cls, text, partition, "partition", form),
            _integer(cls, text, offset, "offset", form),
        )

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@attrs.frozen
class RetainedTopic(Address):
    """The retained message of an MQTT topic (cleared by an empty retained publish)."""

    broker: ClassVar[str] = "mqtt"
    schemes: ClassVar[tuple[str, ...]] = ("mqtt", "mqtts")

    topic: str = attrs.field(
        validator=text(r"[^+#\x00]+", "an MQTT topic name (no wildcards '+' or '#')")
    )

    @property
    def target(self) -> str:
        return self.topic

    @property
    def id(self) -> str:
        return self.topic

    @classmethod
    def parse(cls, text: str) -> RetainedTopic:
        """The topic itself."""
        if not isinstance(text, str):
            raise TypeError(f"RetainedTopic.parse takes a topic str, got {text!r}")
        return cls(text)

    def __str__(self) -> str:
        return self.topic
