"""The aiokafka adapter's own specs against the test bed's real Kafka (single node and cluster).

They are the Kafka specs both clients share (tests/kafka_family.py); the conformance kit runs
in test_conformance.py.
"""

from tests import kafka_family as family


class TestKafkaAdapter(family.KafkaSpecs):
    """KafkaAdapter (aiokafka)."""
