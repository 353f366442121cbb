"""The MQTT adapter passes the conformance kit on Mosquitto, for retained and live messages."""

from __future__ import annotations

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")

from msgdel.testing.conformance import AdapterConformance, Harness
from tests.mqtt.harness import LiveHarness, RetainedHarness


class TestRetainedMessages(AdapterConformance):
    """A consumed retained message is cleared; the other topics keep theirs."""

    @pytest.fixture
    def harness(self, retained_messages: RetainedHarness) -> Harness:
        return retained_messages


class TestLiveMessages(AdapterConformance):
    """A message published while subscribed was never stored: nothing is sent."""

    @pytest.fixture
    def harness(self, live_messages: LiveHarness) -> Harness:
        return live_messages
