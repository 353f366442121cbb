"""RabbitAdapter passes the conformance kit on a classic and on a quorum queue.

Skipped by the kit itself: the coalescing count (RabbitMQ cannot count settling frames:
``RabbitHarness.requests``), the stopped broker (``restartable = False``: a stopped broker
closes the channel, the delivery is gone and redelivered later, so no retry of the same
message can succeed; ``test_adapter.py`` specifies the closed channel instead), and the
cases of other semantics than EXACT.
"""

from __future__ import annotations

from typing import Any

import pytest
from faststream.rabbit import QueueType

from msgdel.testing.conformance import AdapterConformance
from tests.rabbit.harness import RabbitHarness


class TestClassicQueue(AdapterConformance):
    @pytest.fixture
    def harness(self, rabbit_server: Any) -> RabbitHarness:
        return RabbitHarness(rabbit_server.url, QueueType.CLASSIC)


class TestQuorumQueue(AdapterConformance):
    @pytest.fixture
    def harness(self, rabbit_server: Any) -> RabbitHarness:
        return RabbitHarness(rabbit_server.url, QueueType.QUORUM)
