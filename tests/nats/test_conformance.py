"""Every NATS adapter passes msgdel's conformance kit, for every kind of message FastStream
delivers, against the test bed's nats-server; and the NATS specifics every variant shares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import pytest

import msgdel
from msgdel.adapters.nats import JetStreamAdapter
from msgdel.testing.conformance import AdapterConformance
from tests.nats.harness import (
    CoreNatsHarness,
    JetStreamBatchHarness,
    JetStreamHarness,
    KeyValueHarness,
    NatsHarness,
    ObjectStoreHarness,
)
from tests.testbed.nats import NatsServer


class NatsConformance(AdapterConformance):
    """The kit, and what it leaves open that NATS pins down, on a ``make(server, **options)``
    harness."""

    make: ClassVar[Callable[..., NatsHarness]]

    @pytest.fixture
    def options(self) -> dict[str, Any]:
        return {}

    @pytest.fixture
    async def harness(
        self, nats_server: NatsServer, options: dict[str, Any]
    ) -> AsyncIterator[NatsHarness]:
        async with self.make(nats_server, **options) as harness:
            yield harness

    async def test_the_result_names_the_stream_bucket_or_subject(self, kit: NatsHarness) -> None:
        async with kit.consumed(1) as got:
            result = await msgdel.delete(got.messages[0], registry=kit.registry)
        assert result.target == got.target


class StoredNatsConformance(NatsConformance):
    """For what the server stores: JetStream, and the KV and object-store buckets on it."""

    async def test_delete_many_sends_one_request_per_stored_id(self, kit: NatsHarness) -> None:
        async with kit.consumed(3) as got:
            before = await kit.requests(got.target)
            await msgdel.delete_many(got.messages, registry=kit.registry)
            sent = await kit.requests(got.target) - before
        assert sent == sum(len(ids) for ids in got.ids)


class TestJetStreamMessages(StoredNatsConformance):
    make = JetStreamHarness

    @pytest.fixture(
        params=[{}, {"pull": True}, {"adapter": JetStreamAdapter(erase=True)}],
        ids=["push", "pull", "push-erase"],
    )
    def options(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return dict(request.param)


class TestJetStreamBatchMessages(StoredNatsConformance):
    make = JetStreamBatchHarness


class TestKeyValueEntries(StoredNatsConformance):
    make = KeyValueHarness


class TestObjectStoreEntries(StoredNatsConformance):
    make = ObjectStoreHarness


class TestCoreNatsMessages(NatsConformance):
    make = CoreNatsHarness

    async def test_a_core_message_reports_nothing_stored_and_no_ids(
        self, kit: CoreNatsHarness
    ) -> None:
        async with kit.consumed(1) as got:
            result = await msgdel.delete(got.messages[0], registry=kit.registry)
        assert (result.semantics, result.outcome) == (
            msgdel.Semantics.NOT_STORED,
            msgdel.Outcome.NOTHING_STORED,
        )
        assert (result.broker, result.ids, result.removed) == ("nats", (), 0)
