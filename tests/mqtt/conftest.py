"""The harnesses the MQTT specs share with the conformance kit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # FastStream 0.6 has no MQTT: the test modules skip themselves there
    from tests.mqtt.harness import LiveHarness, RetainedHarness


@pytest.fixture
async def retained_messages(mosquitto_server: Any) -> AsyncIterator[RetainedHarness]:
    """Messages that arrived retained, on the test bed's Mosquitto."""
    from tests.mqtt.harness import RetainedHarness

    async with aclosing(RetainedHarness(mosquitto_server)) as harness:
        yield harness


@pytest.fixture
async def live_messages(mosquitto_server: Any) -> AsyncIterator[LiveHarness]:
    """Messages published while subscribed, on the test bed's Mosquitto."""
    from tests.mqtt.harness import LiveHarness

    async with aclosing(LiveHarness(mosquitto_server)) as harness:
        yield harness
