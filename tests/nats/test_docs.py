"""The NATS page's examples run as written against the test bed's nats-server.

Each example gets the server by ``NATS_URL``, as a user would; the streams are read back with
nats-py on a connection of the spec's own, never through msgdel.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
import pytest

import msgdel
from tests.default_registry import fresh_default_registry
from tests.docs_blocks import block, example, printed, run
from tests.eventually import eventually
from tests.nats.harness import JetStreamHarness, stream_entries

STREAMS = ("orders", "KV_sessions", "OBJ_reports")
"""The streams the examples create (the KV bucket's and the object store's among them)."""


@pytest.fixture
async def js(nats_server: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """JetStream on a connection of the spec's own, the server given as ``NATS_URL``; the
    examples' streams are absent before and removed after."""
    monkeypatch.setenv("NATS_URL", nats_server.url)
    client = await nats.connect(nats_server.url)
    jetstream = client.jetstream()

    async def remove() -> None:
        for stream in STREAMS:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await jetstream.delete_stream(stream)

    await remove()
    try:
        yield jetstream
        await remove()
    finally:
        await client.close()


async def test_the_example_deletes_each_order_it_handled_from_the_stream(
    js: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with example("docs/examples/nats_jetstream.py") as program:
        await program.main()
    assert printed(capsys.readouterr().out) == [  # as its comment says, for each order
        f"Outcome.DELETED orders ('{sequence}',)" for sequence in (1, 2, 3)
    ]
    state = (await js.stream_info("orders")).state
    assert (state.messages, state.last_seq) == (0, 3)  # all three stored, none left


def _block_bytes(server: Any, stream: str) -> bytes:
    """What the server's files of ``stream`` hold."""
    files = Path(server.store_dir).glob(f"**/streams/{stream}/msgs/*.blk")
    return b"".join(p.read_bytes() for p in files)


async def test_the_erase_registration_overwrites_the_payload_a_handler_deletes(
    nats_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the block, ``msgdel.delete`` on the default registry erases: the message leaves
    the stream and its payload leaves the stream's files, while its neighbour stays."""
    fresh_default_registry(monkeypatch)
    await run(block("docs/adapters/nats.md", "erasing = JetStreamAdapter(erase=True)").code(), {})
    async with JetStreamHarness(nats_server) as harness:
        async with harness.consumed(2) as got:
            result = await msgdel.delete(got.messages[0])  # the default registry: the block's
            neighbour = got.messages[1].raw_message.data
            assert await eventually(
                lambda: neighbour in _block_bytes(nats_server, got.target), True
            )  # the server writes its files asynchronously
        assert (result.outcome, result.ids) == (msgdel.Outcome.DELETED, got.ids[0])
        assert await harness.stored(got.target) == list(got.ids[1])
        secret = got.messages[0].raw_message.data
        assert secret not in _block_bytes(nats_server, got.target)


async def test_the_outside_a_handler_example_purges_the_key_and_deletes_the_object(
    js: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh_default_registry(monkeypatch)  # the example registers its adapters on it
    with example("docs/examples/nats_kv_outside_handler.py") as program:
        await program.main()
    assert printed(capsys.readouterr().out) == [
        "Outcome.DELETED sessions ('alice',)",
        "Outcome.DELETED reports ('2024.pdf',)",
    ]
    (marker,) = await stream_entries(js, "KV_sessions")  # purged: the history is gone too
    assert (marker.subject, (marker.headers or {}).get("KV-Operation")) == (
        "$KV.sessions.alice",
        "PURGE",
    )
    info = await (await js.object_store("reports")).get_info("2024.pdf", show_deleted=True)
    assert info.deleted
    left = [e.subject for e in await stream_entries(js, "OBJ_reports")]
    assert not [s for s in left if s and s.startswith("$O.reports.C.")], left  # no chunk left
