"""The example adapter passes msgdel's conformance kit against a real SQLite database."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from msgdel_sqlite_outbox import OutboxMessage, read_outbox

import msgdel
from msgdel.testing.conformance import AdapterConformance, Consumed, Harness

_tables = itertools.count()


class OutboxHarness(Harness):
    """Publishing is an INSERT, consuming is reading the rows, the broker's state a SELECT."""

    def __init__(self, db: Path) -> None:
        self.db = str(db)
        self._registry = msgdel.Registry(builtins=False)
        self._registry.load_entry_points()  # the adapter comes from this package's entry point

    @property
    def registry(self) -> msgdel.Registry:
        return self._registry

    @property
    def message_type(self) -> type:
        return OutboxMessage

    @asynccontextmanager
    async def consumed(self, count: int) -> AsyncIterator[Consumed]:
        table = f"outbox_{next(_tables)}"
        with sqlite3.connect(self.db) as connection:
            connection.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, body BLOB)")
            connection.executemany(
                f"INSERT INTO {table} (body) VALUES (?)",
                [(f"m{i}".encode(),) for i in range(count)],
            )
        messages = read_outbox(self.db, table)
        yield Consumed(table, messages, [(m.message_id,) for m in messages])

    async def stored(self, target: Any) -> list[str]:
        with sqlite3.connect(self.db) as connection:
            return [str(r[0]) for r in connection.execute(f"SELECT id FROM {target} ORDER BY id")]


class TestSqliteOutboxAdapter(AdapterConformance):
    @pytest.fixture
    def harness(self, tmp_path: Path) -> Harness:
        return OutboxHarness(tmp_path / "outbox.db")
