"""Redis: stream entries are deleted exactly; list and pub/sub messages were never kept.

A stream entry read in a consumer group is acknowledged and deleted in one atomic round trip,
so no pending entry is left dangling: ``XACKDEL … DELREF`` on Redis >= 8.2, else
``MULTI XACK XDEL EXEC``. An entry read without a group is deleted with ``XDELEX … DELREF``
on 8.2 (which also drops other groups' references to it) or ``XDEL``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

from faststream.message import AckStatus
from redis import exceptions as redis_errors

from msgdel.compat import bind_to_subscriber
from msgdel.errors import DeletionFailed, NotDeletable, UnsupportedDeletion
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

BROKER = "redis"
XACKDEL_VERSION = (8, 2)
"""First Redis version with XACKDEL and XDELEX."""

# Per-id replies of XACKDEL and XDELEX.
_NOT_FOUND, _DELETED, _STILL_REFERENCED = -1, 1, 2

try:  # FastStream 0.7 binds a FakeConsumer to the in-memory test broker's stream messages
    from faststream.redis.message import FakeConsumer

    _FAKE_CONSUMERS: tuple[type, ...] = (FakeConsumer,)
except ImportError:  # FastStream 0.6: those messages carry no client and no ids
    _FAKE_CONSUMERS = ()

_versions: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()

_UNBOUND_HINT = (
    "this RedisStreamMessage carries no Redis client: FastStream 0.6 binds none, and msgdel "
    "finds it only inside the handler. Delete within the handler (or with "
    "msgdel.faststream.DeleteMiddleware), or upgrade to FastStream 0.7"
)


class _Address(NamedTuple):
    """Where one consumed stream message lives."""

    client: Any
    stream: str
    group: str | None
    ids: tuple[bytes, ...]


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


class RedisStreamAdapter:
    """Deletes Redis stream entries (``RedisStreamMessage``, ``RedisBatchStreamMessage``).

    Semantics EXACT: only the message's own entries are removed. With
    ``wait_for_all_groups=True`` an entry is removed only once every consumer group has
    acknowledged it (Redis >= 8.2); until then the outcome is ``DEFERRED`` and the entry stays.
    """

    semantics = Semantics.EXACT

    def __init__(self, *, wait_for_all_groups: bool = False) -> None:
        self.wait_for_all_groups = wait_for_all_groups

    def __repr__(self) -> str:
        return f"RedisStreamAdapter(wait_for_all_groups={self.wait_for_all_groups})"

    async def delete(self, message: Any, /) -> DeleteResult:
        """Delete the message's stream entries; see :meth:`delete_many`."""
        return (await self.delete_many([message]))[0]

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult]:
        """Delete every message's entries: one round trip per Redis client, results in order.

        On Redis >= 8.2 that round trip is one command per stream and group; before 8.2 it is
        one ``MULTI`` holding one ``XACK`` per stream and group and one ``XDEL`` per message.
        """
        results: list[DeleteResult | None] = [None] * len(messages)
        by_client: dict[int, list[tuple[int, _Address]]] = {}
        for index, message in enumerate(messages):
            address = _address(message)
            if address is None:
                results[index] = _result(message, Outcome.SKIPPED, 0)
            else:
                by_client.setdefault(id(address.client), []).append((index, address))
        for work in by_client.values():
            done = await self._delete_on_client(work)
            for (index, address), (_, result) in zip(work, done):
                results[index] = result
                if address.group is not None:
                    _mark_acknowledged(messages[index])
        return [r for r in results if r is not None]

    async def _delete_on_client(
        self, work: list[tuple[int, _Address]]
    ) -> list[tuple[int, DeleteResult]]:
        client = work[0][1].client
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
                return await self._xackdel(client, work)
            return await self._multi_xdel(client, work)
        except redis_errors.ConnectionError as exc:  # TimeoutError is a subclass
            raise DeletionFailed(
                f"Redis could not be reached ({exc}); nothing is known to be deleted, and "
                "retrying is safe: an entry already gone reports ALREADY_GONE",
                retryable=True,
                cause=exc,
            ) from exc
        except redis_errors.RedisError as exc:
            raise DeletionFailed(
                f"Redis refused the deletion: {exc}", retryable=False, cause=exc
            ) from exc

    async def _xackdel(
        self, client: Any, work: list[tuple[int, _Address]]
    ) -> list[tuple[int, DeleteResult]]:
        policy = "ACKED" if self.wait_for_all_groups else "DELREF"
        buckets: dict[tuple[str, str | None], dict[bytes, int]] = {}
        for _, address in work:
            bucket = buckets.setdefault((address.stream, address.group), {})
            for entry_id in address.ids:
                bucket.setdefault(entry_id, _NOT_FOUND)
        commands = [
            ("XDELEX", stream, policy, "IDS", len(bucket), *bucket)
            if group is None
            else ("XACKDEL", stream, group, policy, "IDS", len(bucket), *bucket)
            for (stream, group), bucket in buckets.items()
        ]
        replies = await _send(client, commands)
        for bucket, reply in zip(buckets.values(), replies):
            for entry_id, code in zip(bucket, reply):
                bucket[entry_id] = int(code)
        await self._delete_already_acknowledged(client, buckets, policy)
        done: list[tuple[int, DeleteResult]] = []
        for index, address in work:
            bucket = buckets[address.stream, address.group]
            if len(address.ids) == 1:
                code = bucket[address.ids[0]]
                removed = 1 if code == _DELETED else 0
                deferred = code == _STILL_REFERENCED
            else:
                codes = [bucket[i] for i in address.ids]
                removed = codes.count(_DELETED)
                deferred = _STILL_REFERENCED in codes
            if deferred:
                outcome = Outcome.DEFERRED
            elif removed:
                outcome = Outcome.DELETED
            else:
                outcome = Outcome.ALREADY_GONE
            done.append((index, _address_result(address, outcome, removed)))
        return done

    @staticmethod
    async def _delete_already_acknowledged(
        client: Any, buckets: dict[tuple[str, str | None], dict[bytes, int]], policy: str
    ) -> None:
        """XACKDEL skips an entry its group no longer has pending (acknowledged earlier):
        delete those with XDELEX, in one more round trip, only when there are any."""
        retry = {
            stream: [i for i, code in bucket.items() if code == _NOT_FOUND]
            for (stream, group), bucket in buckets.items()
            if group is not None
        }
        retry = {stream: ids for stream, ids in retry.items() if ids}
        if not retry:
            return
        replies = await _send(
            client,
            [("XDELEX", stream, policy, "IDS", len(ids), *ids) for stream, ids in retry.items()],
        )
        for (stream, ids), reply in zip(retry.items(), replies):
            for (key, group), bucket in buckets.items():
                if key == stream and group is not None:
                    for entry_id, code in zip(ids, reply):
                        if bucket.get(entry_id) == _NOT_FOUND:
                            bucket[entry_id] = int(code)

    async def _multi_xdel(
        self, client: Any, work: list[tuple[int, _Address]]
    ) -> list[tuple[int, DeleteResult]]:
        acks: dict[tuple[str, str], dict[bytes, None]] = {}
        for _, address in work:
            if address.group is not None:
                acks.setdefault((address.stream, address.group), {}).update(
                    dict.fromkeys(address.ids)
                )
        async with client.pipeline(transaction=True) as pipe:
            for (stream, group), ids in acks.items():
                pipe.execute_command("XACK", stream, group, *ids)
            for _, address in work:
                pipe.execute_command("XDEL", address.stream, *address.ids)
            replies = await pipe.execute()
        done: list[tuple[int, DeleteResult]] = []
        for (index, address), removed in zip(work, replies[len(acks) :]):
            outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
            done.append((index, _address_result(address, outcome, int(removed))))
        return done


async def _send(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``commands`` in one round trip: a plain command when there is one, else a pipeline."""
    if len(commands) == 1:
        return [await client.execute_command(*commands[0])]
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())


class RedisListAdapter:
    """List messages (``RedisListMessage``, ``RedisBatchListMessage``) were popped on read."""

    semantics = Semantics.NOT_STORED

    def __repr__(self) -> str:
        return "RedisListAdapter()"

    async def delete(self, message: Any, /) -> DeleteResult:
        """Send nothing; the outcome is ``ALREADY_GONE``."""
        return _not_stored(message, Outcome.ALREADY_GONE)

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult]:
        """Send nothing; every outcome is ``ALREADY_GONE``."""
        return [_not_stored(m, Outcome.ALREADY_GONE) for m in messages]


class RedisChannelAdapter:
    """Pub/sub messages (``RedisChannelMessage``) are never stored by Redis."""

    semantics = Semantics.NOT_STORED

    def __repr__(self) -> str:
        return "RedisChannelAdapter()"

    async def delete(self, message: Any, /) -> DeleteResult:
        """Send nothing; the outcome is ``NOTHING_STORED``."""
        return _not_stored(message, Outcome.NOTHING_STORED)

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult]:
        """Send nothing; every outcome is ``NOTHING_STORED``."""
        return [_not_stored(m, Outcome.NOTHING_STORED) for m in messages]


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
    raw = _raw(message)
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
    if type(client) in _FAKE_CONSUMERS:
        return None
    if not ids:
        raise NotDeletable(
            f"this stream message from {raw['channel']!r} has no entry ids, so no entry can be "
            "addressed; nothing was deleted"
        )
    return _Address(client, raw["channel"], getattr(message, "group", None), ids)


def _mark_acknowledged(message: Any) -> None:
    """The delete acknowledged the entry in its group: spare FastStream a second XACK."""
    if getattr(message, "committed", None) is None:
        message.committed = AckStatus.ACKED


def _address_result(address: _Address, outcome: Outcome, removed: int) -> DeleteResult:
    ids = address.ids
    text = (ids[0].decode(),) if len(ids) == 1 else tuple(i.decode() for i in ids)
    return DeleteResult(BROKER, address.stream, text, Semantics.EXACT, outcome, removed)


def _result(message: Any, outcome: Outcome, removed: int) -> DeleteResult:
    raw = _raw(message)
    ids = raw.get("message_ids") or ()
    return DeleteResult(BROKER, str(raw["channel"]), ids, Semantics.EXACT, outcome, removed)


def _not_stored(message: Any, outcome: Outcome) -> DeleteResult:
    raw = _raw(message)
    return DeleteResult(BROKER, str(raw["channel"]), (), Semantics.NOT_STORED, outcome, 0)
