"""The shared Kafka suite (tests/kafka_family.py) runs here through confluent-kafka."""

from typing import Any

import pytest

pytest.register_assert_rewrite("tests.kafka_family")  # its specs assert: show the values


@pytest.fixture(scope="session")
def client() -> Any:
    from tests.confluent.harness import Confluent

    return Confluent()
