"""Redis: stream entries are deleted exactly; list and pub/sub messages were never kept.

A stream entry read in a consumer group is acknowledged and deleted in one atomic round trip,
so no pending entry is left dangling: ``XACKDEL … DELREF`` on Redis >= 8.2, else
``MULTI XACK XDEL EXEC``. An entry read without a group is deleted with ``XDELEX … DELREF``
on 8.2 (which also drops other groups' references to it) or ``XDEL``.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from itertools import chain
from typing import Any

from redis import exceptions as redis_errors

from msgdel.compat import (
    bind_to_subscriber,
    handler_config,
    is_acknowledged,
    is_test_double,
    mark_settled,
)
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

BROKER = "redis"
XACKDEL_VERSION = (8, 2)
"""First Redis version with XACKDEL and XDELEX."""

# Per-id replies of XACKDEL and XDELEX.
_NOT_FOUND, _DELETED, _STILL_REFERENCED = -1, 1, 2

_versions: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()

_UNBOUND_HINT = (
    "this RedisStreamMessage carries no Redis client: FastStream 0.6 binds none, and msgdel "
    "finds it only inside the handler. Delete within the handler (or with "
    "msgdel.faststream.DeleteMiddleware), or upgrade to FastStream 0.7"
)


_Address = tuple[Any, str, "str | None", tuple[bytes, ...], bool]
"""Where one consumed stream message lives: client, stream, group, entry ids, and whether
FastStream (or an earlier delete) has marked it acknowledged."""


async def server_version(client: Any) -> tuple[int, ...]:
    """The Redis server version behind ``client``, asked once per client and then cached."""
    version = _versions.get(client)
    if version is None:
        info = await client.info("server")
        raw = info["redis_version"]
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        version = tuple(int(part) for part in text.split(".")[:3] if part.isdigit())
        _versions[client] = version
    return version


class RedisStreamAdapter(BaseAdapter):
    """Deletes Redis stream entries (``RedisStreamMessage``, ``RedisBatchStreamMessage``).

    Semantics EXACT: only the message's own entries are removed. With
    ``wait_for_all_groups=True`` an entry is removed only once every consumer group has
    acknowledged it (Redis >= 8.2); until then the outcome is ``DEFERRED`` and the entry stays.
    """

    features = Features(BROKER, Semantics.EXACT, acknowledges=True)
    """Deleting also acknowledges the entry in its consumer group (XACKDEL, or XACK in the
    same MULTI), so a caller that queues the deletion may skip FastStream's own XACK."""

    def __init__(self, *, wait_for_all_groups: bool = False) -> None:
        self.wait_for_all_groups = wait_for_all_groups

    def __repr__(self) -> str:
        return f"RedisStreamAdapter(wait_for_all_groups={self.wait_for_all_groups})"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Delete every message's entries: one round trip per Redis client, outcomes in order.

        On Redis >= 8.2 that round trip is one command per stream and group (two when some of
        the group's messages are acknowledged already and others not); before 8.2 it is one
        ``MULTI`` holding one ``XACK`` per stream and group and one ``XDEL`` per message.
        A message that cannot be addressed gets its own :class:`~msgdel.NotDeletable`; a
        client that fails gives its :class:`~msgdel.DeletionFailed` to its own messages only,
        and the clients run concurrently.
        """
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(messages)
        buckets: dict[tuple[int, str, str | None, bool], _Bucket] = {}
        for index, message in enumerate(messages):
            try:
                address = _address(message)
            except MsgdelError as exc:
                outcomes[index] = exc
                continue
            if address is None:
                outcomes[index] = _result(message, Outcome.SKIPPED, 0)
                continue
            client, stream, group, ids, acked = address
            key = (id(client), stream, group, acked)
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = _Bucket(client, stream, group, acked)
            bucket.indexes.append(index)
            bucket.message_ids.append(ids)
        by_client: dict[int, list[_Bucket]] = {}
        for (client_id, *_), bucket in buckets.items():
            by_client.setdefault(client_id, []).append(bucket)
        if len(by_client) == 1:
            (only,) = by_client.values()
            await self._delete_on_client(only)
        elif by_client:
            await asyncio.gather(*(self._delete_on_client(b) for b in by_client.values()))
        for bucket in buckets.values():
            bucket.fill(outcomes, messages)
        return outcomes  # type: ignore[return-value]  # every message has its outcome now

    async def _delete_on_client(self, buckets: list[_Bucket]) -> None:
        """Delete the buckets of one client; a failure is recorded on them, never raised."""
        client = buckets[0].client
        try:
            version = await server_version(client)
            modern = version >= XACKDEL_VERSION
            if self.wait_for_all_groups and not modern:
                raise UnsupportedDeletion(
                    "wait_for_all_groups needs Redis >= 8.2 (XACKDEL/XDELEX with ACKED); this "
                    f"server is {'.'.join(map(str, version))}. Nothing was deleted: upgrade "
                    "Redis, or use RedisStreamAdapter() to delete regardless of other groups"
                )
            if modern:
                await self._xackdel(client, buckets)
            else:
                await self._multi_xdel(client, buckets)
        except redis_errors.RedisError as exc:
            failure: MsgdelError = _failure(exc)
        except MsgdelError as exc:
            failure = exc
        else:
            return
        for bucket in buckets:
            bucket.fail(failure)

    async def _xackdel(self, client: Any, buckets: list[_Bucket]) -> None:
        """One XACKDEL (group) or XDELEX (no group) per bucket: a reply code per entry."""
        policy = "ACKED" if self.wait_for_all_groups else "DELREF"
        for bucket in buckets:
            # A message FastStream already acknowledged is no longer pending in its group, so
            # XACKDEL would skip it: XDELEX DELREF deletes it and drops every group's reference
            # in the same round trip. With ACKED, XACKDEL stays, in case the message was marked
            # acknowledged without an XACK reaching Redis (FastStream 0.6 can do that).
            skip_ack = bucket.acked and not self.wait_for_all_groups
            bucket.xackdel = bucket.group is not None and not skip_ack
        replies = await _send(client, [_xackdel_command(b, policy) for b in buckets])
        for bucket, reply in zip(buckets, replies):
            bucket.codes = [int(code) for code in reply]
        await self._delete_already_acknowledged(client, buckets, policy)

    @staticmethod
    async def _delete_already_acknowledged(
        client: Any, buckets: list[_Bucket], policy: str
    ) -> None:
        """XACKDEL skips an entry its group no longer has pending (acknowledged earlier):
        delete those with XDELEX, in one more round trip, only when there are any."""
        retry = [
            (bucket, [pos for pos, code in enumerate(bucket.codes) if code == _NOT_FOUND])
            for bucket in buckets
            if bucket.xackdel and _NOT_FOUND in bucket.codes
        ]
        if not retry:
            return
        commands = [
            ("XDELEX", b.stream, policy, "IDS", len(ps), *map(b.ids.__getitem__, ps))
            for b, ps in retry
        ]
        try:
            replies = await _send(client, commands)
        except redis_errors.RedisError as exc:
            # The first round trip's answers stand; only the entries that needed this one fail.
            failure = _failure(exc)
            for bucket, positions in retry:
                bucket.fail(failure, positions)
            return
        for (bucket, positions), reply in zip(retry, replies):
            for pos, code in zip(positions, reply):
                bucket.codes[pos] = int(code)

    async def _multi_xdel(self, client: Any, buckets: list[_Bucket]) -> None:
        """One MULTI: an XACK per bucket with a group, then an XDEL per message (its own count).

        Messages marked acknowledged are XACKed all the same: harmless if FastStream's XACK
        reached Redis, and no pending entry is left dangling if it did not."""
        grouped = [b for b in buckets if b.group is not None]
        async with client.pipeline(transaction=True) as pipe:
            for bucket in grouped:
                pipe.execute_command("XACK", bucket.stream, bucket.group, *bucket.ids)
            for bucket in buckets:
                for ids in bucket.message_ids:
                    pipe.execute_command("XDEL", bucket.stream, *ids)
            replies = iter((await pipe.execute())[len(grouped) :])
        for bucket in buckets:
            bucket.removed = [int(next(replies)) for _ in bucket.indexes]


class _Bucket:
    """The messages of one stream and group on one client, and what Redis answered for them."""

    __slots__ = (
        "acked", "client", "codes", "error", "failed", "group", "indexes", "message_ids",
        "removed", "stream", "xackdel",
    )  # fmt: skip

    def __init__(self, client: Any, stream: str, group: str | None, acked: bool) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.acked = acked  # its messages are marked acknowledged already
        self.xackdel = False  # deleted with XACKDEL (else XDELEX)
        self.indexes: list[int] = []  # each message's position in the caller's list
        self.message_ids: list[tuple[bytes, ...]] = []  # each message's entry ids
        self.codes: list[int] = []  # XACKDEL/XDELEX: a code per id, in message order
        self.removed: list[int] = []  # MULTI XDEL: a count per message
        self.error: MsgdelError | None = None  # why some or all of its messages failed
        self.failed: frozenset[int] | None = None  # the failed id positions; None: every one

    @property
    def ids(self) -> list[bytes]:
        """Every message's ids, in message order."""
        return list(chain.from_iterable(self.message_ids))

    def fail(self, error: MsgdelError, positions: Sequence[int] | None = None) -> None:
        """Record ``error`` for the messages holding the ids at ``positions`` (default: all)."""
        self.error = error
        self.failed = None if positions is None else frozenset(positions)

    def fill(
        self, outcomes: list[DeleteResult | MsgdelError | None], messages: Sequence[Any]
    ) -> None:
        """Put each message's outcome at its index: its result, or the error it failed with.

        A message read in a group that has a result is marked acknowledged: its deletion
        acknowledged it, so FastStream sends no XACK of its own."""
        stream, exact, error, failed = self.stream, Semantics.EXACT, self.error, self.failed
        grouped = self.group is not None
        end = 0
        for number, (index, ids) in enumerate(zip(self.indexes, self.message_ids)):
            start, end = end, end + len(ids)  # the message's id positions in the bucket
            if error is not None and (failed is None or not failed.isdisjoint(range(start, end))):
                outcomes[index] = error
                continue
            if not self.codes:  # MULTI XDEL
                removed = self.removed[number]
                outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
            elif end - start == 1:
                outcome, removed = _BY_CODE.get(self.codes[start]) or _combined(
                    self.codes[start:end]
                )
            else:
                outcome, removed = _combined(self.codes[start:end])
            text = tuple(map(bytes.decode, ids))
            outcomes[index] = DeleteResult(BROKER, stream, text, exact, outcome, removed)
            if grouped:
                mark_settled(messages[index])


def _failure(exc: redis_errors.RedisError) -> DeletionFailed:
    """What a redis-py error means for the deletions it interrupted."""
    if isinstance(exc, redis_errors.ConnectionError):  # TimeoutError is a subclass
        return DeletionFailed(
            f"Redis could not be reached ({exc}); nothing is known to be deleted, and "
            "retrying is safe: an entry already gone reports ALREADY_GONE",
            retryable=True,
            cause=exc,
        )
    return DeletionFailed(f"Redis refused the deletion: {exc}", retryable=False, cause=exc)


_BY_CODE = {
    _DELETED: (Outcome.DELETED, 1),
    _NOT_FOUND: (Outcome.ALREADY_GONE, 0),
    _STILL_REFERENCED: (Outcome.DEFERRED, 0),
}
"""What one XACKDEL/XDELEX reply code means for a single-entry message."""


def _combined(codes: list[int]) -> tuple[Outcome, int]:
    """The outcome of a message with several entries: DEFERRED if any entry is still
    referenced, else DELETED if any was removed, else ALREADY_GONE."""
    removed = codes.count(_DELETED)
    if _STILL_REFERENCED in codes:
        return Outcome.DEFERRED, removed
    return (Outcome.DELETED if removed else Outcome.ALREADY_GONE), removed


def _xackdel_command(bucket: _Bucket, policy: str) -> tuple[Any, ...]:
    ids = bucket.ids
    if not bucket.xackdel:
        return ("XDELEX", bucket.stream, policy, "IDS", len(ids), *ids)
    return ("XACKDEL", bucket.stream, bucket.group, policy, "IDS", len(ids), *ids)


async def _send(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``commands`` in one round trip: a plain command when there is one, else a pipeline."""
    if len(commands) == 1:
        return [await client.execute_command(*commands[0])]
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())


class RedisListAdapter(BaseAdapter):
    """List messages (``RedisListMessage``, ``RedisBatchListMessage``) were popped on read."""

    features = Features(BROKER, Semantics.NOT_STORED, coalesces=False)

    def __repr__(self) -> str:
        return "RedisListAdapter()"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Send nothing; every outcome is ``ALREADY_GONE`` (``NotDeletable`` for a message
        that is no consumed FastStream Redis message; ``SKIPPED`` inside a handler of
        FastStream's in-memory test broker)."""
        return [_not_stored(m, _in_memory_or(Outcome.ALREADY_GONE)) for m in messages]


class RedisChannelAdapter(BaseAdapter):
    """Pub/sub messages (``RedisChannelMessage``) are never stored by Redis."""

    features = Features(
        BROKER, Semantics.NOT_STORED, coalesces=False, repeat=Outcome.NOTHING_STORED
    )

    def __repr__(self) -> str:
        return "RedisChannelAdapter()"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Send nothing; every outcome is ``NOTHING_STORED`` (``NotDeletable`` for a message
        that is no consumed FastStream Redis message; ``SKIPPED`` inside a handler of
        FastStream's in-memory test broker)."""
        return [_not_stored(m, _in_memory_or(Outcome.NOTHING_STORED)) for m in messages]


def _in_memory_or(outcome: Outcome) -> Outcome:
    """``SKIPPED`` inside a handler of FastStream's in-memory test broker, else ``outcome``.

    A list or pub/sub message of ``TestRedisBroker`` is built exactly like a real one (same
    class, same raw message, no client bound to it): only the running handler's broker tells.
    """
    config = handler_config()
    return Outcome.SKIPPED if is_test_double(getattr(config, "producer", None)) else outcome


def _raw(message: Any) -> dict[str, Any]:
    raw = getattr(message, "raw_message", None)
    if not isinstance(raw, dict) or "channel" not in raw:
        raise NotDeletable(
            f"{type(message).__name__} is not a consumed FastStream Redis message "
            "(it has no raw_message with a channel)"
        )
    return raw


def _address(message: Any) -> _Address | None:
    """Where the message lives, or None for a message of FastStream's in-memory test broker."""
    raw = getattr(message, "raw_message", None)
    if type(raw) is not dict or "channel" not in raw:
        raw = _raw(message)  # raises NotDeletable
    raw_ids: Sequence[Any] = raw.get("message_ids") or ()
    if len(raw_ids) == 1 and type(raw_ids[0]) is bytes:
        ids: tuple[bytes, ...] = (raw_ids[0],)
    else:
        ids = tuple(i if type(i) is bytes else str(i).encode() for i in raw_ids)
    client = getattr(message, "consumer", None)
    if client is None:
        if not ids:
            return None
        bind_to_subscriber(message)  # FastStream 0.6, inside a handler
        client = getattr(message, "consumer", None)
        if client is None:
            raise NotDeletable(_UNBOUND_HINT)
    if is_test_double(client):
        return None
    if not ids:
        raise NotDeletable(
            f"this stream message from {raw['channel']!r} has no entry ids, so no entry can be "
            "addressed; nothing was deleted"
        )
    group = getattr(message, "group", None)
    acked = group is not None and is_acknowledged(message)
    return (client, raw["channel"], group, ids, acked)


def _result(message: Any, outcome: Outcome, removed: int) -> DeleteResult:
    raw = _raw(message)
    ids = raw.get("message_ids") or ()
    return DeleteResult(BROKER, str(raw["channel"]), ids, Semantics.EXACT, outcome, removed)


def _not_stored(message: Any, outcome: Outcome) -> DeleteResult | MsgdelError:
    try:
        raw = _raw(message)
    except NotDeletable as exc:
        return exc
    return DeleteResult(BROKER, str(raw["channel"]), (), Semantics.NOT_STORED, outcome, 0)
