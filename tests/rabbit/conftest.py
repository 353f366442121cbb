"""The harness the RabbitMQ specs share with the conformance kit."""

from __future__ import annotations

from typing import Any

import pytest

from tests.rabbit.harness import RabbitHarness


@pytest.fixture
def classic(rabbit_server: Any) -> RabbitHarness:
    """Fresh classic queues on the test bed's node."""
    return RabbitHarness(rabbit_server.url)
