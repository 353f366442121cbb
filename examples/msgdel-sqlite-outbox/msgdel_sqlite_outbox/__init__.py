"""An example third-party msgdel adapter, for a message class msgdel ships no adapter for.

A transactional outbox: a service writes the messages it must publish into a SQLite table
in the same transaction as its data, and a relay reads them as :class:`OutboxMessage`
(a FastStream ``StreamMessage``). Once delivered, ``await msgdel.delete(msg)`` removes the
row. Install this distribution and the default registry finds the adapter through the
``msgdel.adapters`` entry point.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from faststream.message import StreamMessage

import msgdel
from msgdel import BaseAdapter, DeleteResult, Features, MsgdelError, NotDeletable, Outcome

__all__ = ["OutboxMessage", "SqliteOutboxAdapter", "install", "read_outbox"]

BROKER = "sqlite-outbox"


class OutboxMessage(StreamMessage[dict[str, Any]]):
    """One row of an outbox table: ``raw_message`` is ``{"db", "table", "id", "body"}``."""


def read_outbox(db: str, table: str) -> list[OutboxMessage]:
    """Every row of ``table`` in the SQLite file ``db``, oldest first, as messages."""
    with sqlite3.connect(db) as connection:
        rows = connection.execute(f'SELECT id, body FROM "{table}" ORDER BY id').fetchall()
    return [
        OutboxMessage(
            {"db": db, "table": table, "id": row_id, "body": body},
            body=body,
            message_id=str(row_id),
        )
        for row_id, body in rows
    ]


class SqliteOutboxAdapter(BaseAdapter):
    """Deletes delivered outbox rows: one ``DELETE ... WHERE id IN (...)`` per table.

    Semantics EXACT (only the given rows go). A row deleted before is ``ALREADY_GONE``.
    """

    features = Features(BROKER, msgdel.Semantics.EXACT, closes=True)

    def __init__(self) -> None:
        self._connections: dict[str, sqlite3.Connection] = {}

    def __repr__(self) -> str:
        return "SqliteOutboxAdapter()"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """One outcome per message, in order; a message that is not an outbox row fails alone."""
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(messages)
        tables: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for index, message in enumerate(messages):
            raw = getattr(message, "raw_message", None)
            if not isinstance(raw, dict) or not {"db", "table", "id"} <= raw.keys():
                outcomes[index] = NotDeletable(
                    f"{type(message).__name__} is not a row read from an outbox table "
                    "(read rows with read_outbox); nothing was deleted"
                )
                continue
            tables.setdefault((raw["db"], raw["table"]), []).append((index, int(raw["id"])))
        for (db, table), rows in tables.items():
            connection = self._connection(db)
            ids = [row_id for _, row_id in rows]
            marks = ",".join("?" * len(ids))
            with connection:  # one transaction: RETURNING says exactly which rows went
                gone = {
                    row[0]
                    for row in connection.execute(
                        f'DELETE FROM "{table}" WHERE id IN ({marks}) RETURNING id', ids
                    )
                }
            for index, row_id in rows:
                removed = int(row_id in gone)
                outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
                outcomes[index] = DeleteResult(
                    BROKER, table, (str(row_id),), msgdel.Semantics.EXACT, outcome, removed
                )
        return [o for o in outcomes if o is not None]

    def _connection(self, db: str) -> sqlite3.Connection:
        connection = self._connections.get(db)
        if connection is None:
            connection = self._connections[db] = sqlite3.connect(db)
        return connection

    async def aclose(self) -> None:
        """Close the SQLite connections; a later deletion opens them again."""
        connections, self._connections = self._connections, {}
        for connection in connections.values():
            connection.close()


def install(registry: msgdel.Registry) -> None:
    """The ``msgdel.adapters`` entry point: register the adapter for :class:`OutboxMessage`."""
    registry.register(OutboxMessage, SqliteOutboxAdapter())
