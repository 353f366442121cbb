"""The RabbitMQ page's examples run as written against the test bed's node.

Each example gets the node by ``RABBIT_URL``, as a user would; its ``main()`` runs as
``python <file>`` runs it, and the queues are read back on a connection of their own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.default_registry import fresh_default_registry
from tests.docs_blocks import example
from tests.rabbit.harness import drain, drain_bodies, inspecting, queue_depth

QUEUES = ("orders", "audit", "payments", "payments.dead")
"""The queues the examples declare, deleted after each spec."""


@pytest.fixture
async def rabbit(rabbit_server: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The test bed's node as ``RABBIT_URL``; the examples' queues are removed afterwards."""
    monkeypatch.setenv("RABBIT_URL", rabbit_server.url)
    yield rabbit_server.url
    async with inspecting(rabbit_server.url) as channel:
        for queue in QUEUES:
            await channel.queue_delete(queue)


async def test_the_example_deletes_the_order_it_handled(
    rabbit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with example("docs/examples/rabbit_delete.py") as program:
        await program.main()
    assert capsys.readouterr().out == "Outcome.DELETED orders ('1',)\n"  # as its comment says
    assert await queue_depth(rabbit, "orders") == 0


async def test_the_manual_example_deletes_debug_messages_and_leaves_the_rest(
    rabbit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with example("docs/examples/rabbit_manual.py") as program:
        await program.main()
    assert capsys.readouterr().out == (
        "handled ['debug: cache warmed', 'login: alice'] - the login record is back in the queue\n"
    )
    assert await drain_bodies(rabbit, "audit") == ["login: alice"]


async def test_the_dead_letter_example_hands_the_deleted_order_to_the_dlx(
    rabbit: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = fresh_default_registry(monkeypatch)  # the example registers on the default
    try:
        with example("docs/examples/rabbit_dead_letter.py") as program:
            await program.main()
    finally:
        await registry.aclose()
    assert capsys.readouterr().out == "Outcome.DELETED payments\n"
    assert await queue_depth(rabbit, "payments") == 0
    (dead,) = await drain(rabbit, "payments.dead")
    assert dead.body == b"payment 1"
    deaths: Any = dead.headers["x-death"]
    death = deaths[0]
    assert (death["reason"], death["queue"]) == ("rejected", "payments")
