"""Erasure on Redis streams: a bounded-memory scan for a field's value, deleted in batches.

A stream has no index by field, so the stream is read in `XRANGE` pages of `page_size`
entries (ids strictly after the last one read) and every entry whose field holds the value is
collected; at most `batch_size` ids are held before they are deleted, in one round trip per
batch. Erasure removes the data whatever other consumers still need: on Redis >= 8.2 (where
the server has `XDELEX`) one `XDELEX stream DELREF IDS …`, which also drops every consumer
group's reference; before, one `MULTI` of an `XACK` per consumer group and an `XDEL`, so no
group keeps a dangling pending entry either way. Deleting is idempotent, so an interrupted
erasure is finished by running it again (from the report's `resume_from`, or from the start).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

try:
    from redis import exceptions as redis_errors
    from redis.asyncio import Redis
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("redis") from exc

from msgdel.adapters.redis import RedisStreamAdapter
from msgdel.erasure import (
    ErasureReport,
    Options,
    RedisStreamField,
    failed,
    found,
    unerasable,
)
from msgdel.errors import MsgdelError

_DELETED = 1
_has_xdelex: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


async def erase(
    connection: object, targets: Sequence[Any], options: Options
) -> list[ErasureReport]:
    """Erase `targets` ([`RedisStreamField`][msgdel.erasure.RedisStreamField]) one after the
    other, on `connection` (a URL, or a `redis.asyncio.Redis`)."""
    if isinstance(connection, str):
        try:
            async with RedisStreamAdapter().connect(connection) as client:
                return await _erase_all(client, targets, options)
        except MsgdelError as exc:  # could not connect: nothing was sent
            return [failed(t, exc) for t in targets]
    if not isinstance(connection, Redis):
        kind = type(connection)
        raise TypeError(
            f"Redis targets are erased on a redis.asyncio.Redis or a redis:// URL, got "
            f"{kind.__module__}.{kind.__qualname__}; nothing was sent"
        )
    return await _erase_all(connection, targets, options)


async def _erase_all(client: Any, targets: Sequence[Any], options: Options) -> list[ErasureReport]:
    reports = []
    for index, target in enumerate(targets):
        if not isinstance(target, RedisStreamField):
            reports.append(unerasable(target, "a Redis connection erases RedisStreamField targets"))
            continue
        reports.append(await _Scan(client, index, target, options).run())
    return reports


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class _Scan:
    """One target's scan: where it is, what it found, what it removed."""

    def __init__(self, client: Any, index: int, target: RedisStreamField, options: Options) -> None:
        self.client, self.index, self.target, self.options = client, index, target, options
        self.field, self.value = _bytes(target.field), _bytes(target.value)
        self.scanned = self.matched = self.removed = 0
        self.done_up_to = target.after  # every match at or before this id is deleted
        self.groups: list[bytes] = []

    async def run(self) -> ErasureReport:
        stream = self.target.stream
        try:
            kind = _text(await self.client.type(stream))
            if kind == "none":
                return unerasable(
                    self.target, f"Redis has no key {stream!r}: nothing to scan (check the name)"
                )
            if kind != "stream":
                return unerasable(self.target, f"the Redis key {stream!r} holds a {kind}")
            groups = await self.client.xinfo_groups(stream)
            self.groups = [_bytes(g.get("name", g.get(b"name"))) for g in groups]
            await self._scan()
        except redis_errors.RedisError as exc:
            return failed(
                self.target,
                f"{type(exc).__name__}: {exc}; run it again to finish"
                + (f" (or from after={self.done_up_to!r})" if self.done_up_to else ""),
                matched=self.matched,
                removed=self.removed,
                scanned=self.scanned,
                resume_from=self.done_up_to,
            )
        note = None
        if self.removed and self.groups:
            note = (
                f"deleted for every consumer group ({len(self.groups)}): pending entries of "
                "the person were acknowledged and removed, whatever a group still needed"
            )
        return found(
            self.target, self.options, self.matched, self.removed,
            scanned=self.scanned, reason=note,
        )  # fmt: skip

    async def _scan(self) -> None:
        start = f"({self.target.after}" if self.target.after else "-"
        batch: list[bytes] = []
        while True:
            page = await self.client.xrange(self.target.stream, start, "+", self.options.page_size)
            if not page:
                break
            hits = [entry_id for entry_id, fields in page if fields.get(self.field) == self.value]
            batch += hits
            self.scanned += len(page)
            self.matched += len(hits)
            last = _text(page[-1][0])
            if len(batch) >= self.options.batch_size:
                await self._delete(batch)
                batch = []
            if not batch:
                self.done_up_to = last
            self.options.report(self.index, self.target, self.scanned, self.matched, self.removed)
            if len(page) < self.options.page_size:
                break
            start = f"({last}"
        if batch:
            await self._delete(batch)
            self.done_up_to = last
            self.options.report(self.index, self.target, self.scanned, self.matched, self.removed)

    async def _delete(self, ids: list[bytes]) -> None:
        """Delete `ids` in one round trip (nothing in a dry run), for every consumer group."""
        if self.options.dry_run:
            return
        stream = self.target.stream
        if await _xdelex(self.client, stream):
            codes = await self.client.execute_command("XDELEX", stream, "DELREF", "IDS", len(ids),
                                                      *ids)  # fmt: skip
            self.removed += sum(1 for code in codes if int(code) == _DELETED)
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for group in self.groups:
                pipe.execute_command("XACK", stream, group, *ids)
            pipe.execute_command("XDEL", stream, *ids)
            replies = await pipe.execute()
        self.removed += int(replies[-1])


async def _xdelex(client: Any, stream: str) -> bool:
    """Whether the server has `XDELEX` (asked once per client, by trying it on id `0-0`, which
    no stream can hold: the command, not the version, as Valkey reports an older version)."""
    known = _has_xdelex.get(client)
    if known is None:
        try:
            await client.execute_command("XDELEX", stream, "KEEPREF", "IDS", 1, "0-0")
        except redis_errors.ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            known = False
        else:
            known = True
        _has_xdelex[client] = known
    return known
