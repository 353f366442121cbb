"""DeleteMiddleware on a JetStream stream, beyond the conformance kit's middleware cases."""

from __future__ import annotations

from typing import Any

from msgdel.faststream import DeleteMiddleware
from tests.nats.harness import JetStreamHarness


async def test_a_failing_handler_keeps_its_messages_with_when_success(nats_server: Any) -> None:
    async def handle(index: int, message: Any) -> None:
        if index % 10 == 0:
            raise ValueError("the handler failed")

    async with JetStreamHarness(nats_server) as harness:
        middleware = DeleteMiddleware(registry=harness.registry)
        handled = await harness.run_app(middleware, 50, handle=handle)
        kept = [ids[0] for index, ids in enumerate(handled.ids) if index % 10 == 0]
        assert await harness.stored(handled.target) == kept
