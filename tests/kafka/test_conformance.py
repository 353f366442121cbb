"""The aiokafka adapter passes the conformance kit on every message class and strategy."""

from tests import kafka_family as family


class TestTruncatingKafkaMessages(family.Truncating):
    """KafkaMessage, strategy truncate (PREFIX)."""


class TestTruncatingKafkaAckableMessages(family.TruncatingAckable):
    """KafkaAckableMessage (an ack policy other than ACK_FIRST), strategy truncate."""


class TestTruncatingBatchMessages(family.TruncatingBatches):
    """Batch messages of a batch subscriber, strategy truncate."""


class TestTombstoningKafkaMessages(family.Tombstoning):
    """KafkaMessage, strategy tombstone (TOMBSTONE) on a compacted topic."""
