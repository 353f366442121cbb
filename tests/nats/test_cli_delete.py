"""``msgdel delete nats://... STREAM:SEQUENCE`` and ``--kv BUCKET KEY``, run for real against
the test bed's nats-server: what goes, what stays, and what a dry run leaves."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

import nats

from tests.nats.harness import unique


async def msgdel_delete(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "msgdel.cli", "delete", *args],
        capture_output=True, text=True, timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


async def test_sequences_are_deleted_and_their_neighbours_kept(nats_server: Any) -> None:
    client = await nats.connect(nats_server.url)
    try:
        js = client.jetstream()
        stream = unique("cli")
        await js.add_stream(name=stream, subjects=[f"{stream}.>"])
        for n in range(4):
            await js.publish(f"{stream}.in", str(n).encode())
        dry = await msgdel_delete(nats_server.url, f"{stream}:2", "--dry-run")
        assert dry.returncode == 0
        assert (await js.stream_info(stream)).state.messages == 4
        run = await msgdel_delete(nats_server.url, f"{stream}:2", f"{stream}:4", f"{stream}:9",
                                  "--json")  # fmt: skip
        assert run.returncode == 0, run.stderr
        outcomes = [json.loads(line)["outcome"] for line in run.stdout.splitlines()]
        assert outcomes == ["deleted", "deleted", "already_gone"]
        info = (await js.stream_info(stream)).state
        assert (info.messages, info.first_seq) == (2, 1)
        assert (await js.get_msg(stream, 3)).data == b"2"
    finally:
        await client.close()


async def test_kv_keys_are_deleted_with_kv(nats_server: Any) -> None:
    client = await nats.connect(nats_server.url)
    try:
        bucket = unique("cli")
        kv = await client.jetstream().create_key_value(bucket=bucket)
        await kv.put("orders.1", b"a")
        await kv.put("orders.2", b"b")
        run = await msgdel_delete(nats_server.url, "--kv", bucket, "orders.1", "--json")
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["outcome"] == "deleted"
        assert sorted(await kv.keys()) == ["orders.2"]
    finally:
        await client.close()
