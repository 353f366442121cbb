"""The Redis adapters pass the conformance kit on Redis 7 and Redis 8.2, for every kind of
FastStream Redis message."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from msgdel.testing.conformance import AdapterConformance, Harness
from tests.redis.harness import (
    BatchStreamHarness,
    ChannelHarness,
    ListHarness,
    PlainStreamHarness,
    RedisHarness,
    StreamHarness,
)


class RedisConformance(AdapterConformance):
    """The kit against each server of the test bed, with the harness of ``kind``."""

    kind: ClassVar[type[RedisHarness]]

    @pytest.fixture
    def harness(self, redis_server: Any) -> Harness:
        return self.kind(redis_server)


class TestStreamMessagesReadInAGroup(RedisConformance):
    kind = StreamHarness


class TestStreamMessagesReadWithoutAGroup(RedisConformance):
    kind = PlainStreamHarness


class TestBatchStreamMessages(RedisConformance):
    kind = BatchStreamHarness


class NotStoredConformance(RedisConformance):
    async def test_messages_of_the_in_memory_test_broker_are_skipped(self, kit: Harness) -> None:
        pytest.skip(
            "outside a handler a TestRedisBroker list or pub/sub message is built exactly like "
            "a real one (same class and raw message, no client bound), so nothing tells them "
            "apart; inside a handler it is SKIPPED (test_middleware_in_memory specifies that)"
        )


class TestListMessages(NotStoredConformance):
    kind = ListHarness


class TestChannelMessages(NotStoredConformance):
    kind = ChannelHarness
