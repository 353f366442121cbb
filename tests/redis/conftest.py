"""Fixtures the Redis specs share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.testbed.redis import RedisServer, redis8


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis 8.2 of this test alone, so stopping it disturbs no other test."""
    server = redis8(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
