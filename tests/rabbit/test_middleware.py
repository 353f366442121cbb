"""DeleteMiddleware on a real FastStream app under load: every delivery settled once.

The conformance kit runs the middleware on 20 messages; a thousand make the Batcher's
batches interleave with FastStream's own acknowledgements, where settling a delivery twice
(or a ``multiple=True`` frame over a tag FastStream settled) would close the channel.
"""

from __future__ import annotations

import pytest

from msgdel.batcher import Batcher
from msgdel.faststream import DeleteMiddleware
from tests.rabbit.harness import RabbitHarness


@pytest.mark.parametrize("batched", [True, False], ids=["batcher", "direct"])
async def test_a_thousand_handled_messages_leave_the_queue_empty_and_the_channel_open(
    classic: RabbitHarness, batched: bool
) -> None:
    batcher = Batcher() if batched else None
    middleware = DeleteMiddleware(batcher=batcher)
    # run_app fails if the broker closed the channel; the app closes the batcher at shutdown.
    handled = await classic.run_app(
        middleware, 1000, on_shutdown=batcher.close if batcher is not None else None
    )
    assert await classic.stored(handled.target) == []
