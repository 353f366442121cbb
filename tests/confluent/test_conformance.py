"""The confluent-kafka adapter passes the conformance kit on every message class and strategy.

FastStream's confluent broker has no acknowledgeable message class of its own.
"""

from tests import kafka_family as family


class TestTruncatingKafkaMessages(family.Truncating):
    """KafkaMessage, strategy truncate (PREFIX)."""


class TestTruncatingBatchMessages(family.TruncatingBatches):
    """Batch messages of a batch subscriber, strategy truncate."""


class TestTombstoningKafkaMessages(family.Tombstoning):
    """KafkaMessage, strategy tombstone (TOMBSTONE) on a compacted topic."""
