"""Redis: stream entries are deleted exactly; list and pub/sub messages were never kept.

A stream entry read in a consumer group is acknowledged and deleted in one atomic round trip,
so no pending entry is left dangling, and by default only once no other consumer group still
needs it: `XACKDEL … ACKED` on Redis >= 8.2, inside a script that also measures what it
deleted (`XDELEX … ACKED` for an entry read without a group), else one server-side script
per stream that acknowledges, checks every group's
last-delivered id and pending list, and deletes only then. `ignore_other_groups=True`
deletes for every group: `XACKDEL`/`XDELEX … DELREF` on 8.2, `MULTI XACK XDEL EXEC`
before. `match_fields=True` deletes an entry only while the stream still holds, under its id,
the fields the message was consumed with (one server-side script per stream).

By address ([`RedisEntry`][msgdel.address.RedisEntry], for [`delete_at`][msgdel.delete_at]),
`RedisStreamAdapter` deletes with the same code: an entry with a group is acknowledged in that
group and deleted as a message read in it; one without as a message read outside any group.

On a Redis Cluster (`redis.asyncio.cluster.RedisCluster`, the client of FastStream's
`RedisClusterBroker`) the commands are grouped by the node that holds each stream's slot: one
round trip per node, the nodes concurrently, nothing atomic spans two streams (scripts have
one key each; no MULTI is sent), and each node's support of `XACKDEL` is probed on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import warnings
import weakref
from collections.abc import AsyncIterator, Sequence
from itertools import chain, repeat
from typing import Any

try:
    from redis import exceptions as redis_errors
    from redis.asyncio import Redis
    from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("redis") from exc

from msgdel._results import results
from msgdel.address import RedisEntry
from msgdel.compat import (
    bind_to_subscriber,
    handler_config,
    is_acknowledged,
    is_test_double,
    mark_settled,
    under_test_broker,
)
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion, redact
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

BROKER = "redis"
XACKDEL_VERSION = (8, 2)
"""First Redis version with XACKDEL and XDELEX."""

# Per-id replies of XACKDEL and XDELEX.
_NOT_FOUND, _DELETED, _STILL_REFERENCED = -1, 1, 2
_WAS_GONE = -2
"""Not Redis's: an entry XACKDEL claimed to delete (or keep) that the stream did not hold
(see `_truthful`); it is `ALREADY_GONE`, and no XDELEX follows."""

_versions: weakref.WeakKeyDictionary[Any, tuple[int, ...]] = weakref.WeakKeyDictionary()

_UNBOUND_HINT = (
    "this RedisStreamMessage carries no Redis client: FastStream 0.6 binds none, and msgdel "
    "finds it only inside the handler. Delete within the handler (or with "
    "msgdel.faststream.DeleteMiddleware), or upgrade to FastStream 0.7"
)


_Address = tuple[Any, str, "str | None", tuple[bytes, ...], bool]
"""Where stream entries live: client, stream, group, entry ids, and whether FastStream (or an
earlier delete) has marked them acknowledged. A consumed message and a
[`RedisEntry`][msgdel.address.RedisEntry] both become one, and are deleted alike."""

_MAX_ID_PART = 2**64 - 1
"""Each half of a stream id is an unsigned 64-bit number."""


async def server_version(client: Any) -> tuple[int, ...]:
    """The Redis server version behind `client`, asked once per client and then cached."""
    version = _versions.get(client)
    if version is None:
        version = _remember_version(client, await client.info("server"))
    return version


def _remember_version(client: Any, info: dict[str, Any]) -> tuple[int, ...]:
    """Cache and return the version in `client`'s `INFO server` reply."""
    raw = info["redis_version"]
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    version = tuple(int(part) for part in text.split(".")[:3] if part.isdigit())
    _versions[client] = version
    return version


async def supports_xackdel(client: Any) -> bool:
    """Whether the server behind the `redis.asyncio.Redis` `client` has `XACKDEL` (and
    `XDELEX`), asked once (`COMMAND INFO XACKDEL`) and then cached: the command is probed,
    not the version, since Valkey 9.2 has it and reports `redis_version` 7.2.4."""
    return await _Route(client).has_xackdel()


_PROBE = ("COMMAND INFO", "XACKDEL")
"""Whether a server has XACKDEL: `[None]` where it does not. redis-py splits the words of
the first argument on the wire, and parses no reply of `COMMAND INFO` (its `COMMAND` parser
fails on an unknown command's nil)."""


class _Server:
    """What msgdel learnt of one server (a client's, or a cluster node): whether it has
    XACKDEL (None: not asked yet), and which scripts it has loaded."""

    __slots__ = ("probing", "scripts", "xackdel")

    def __init__(self) -> None:
        self.xackdel: bool | None = None
        self.scripts: set[str] = set()
        self.probing: asyncio.Task[bool] | None = None  # the probe in flight, if one is


_servers: weakref.WeakKeyDictionary[Any, dict[str | None, _Server]] = weakref.WeakKeyDictionary()
"""Per client, per cluster node name (None for a client of one server)."""

_stale_topology: weakref.WeakSet[Any] = weakref.WeakSet()
"""Cluster clients a node of which could not be reached: their slot map is read again
before their next deletion, so a retry after a failover goes to the promoted replica."""


class _Route:
    """Where one round trip goes: the server of a `redis.asyncio.Redis`, or one node of a
    `RedisCluster` (commands are sent to it directly, and a redirection is followed)."""

    __slots__ = ("client", "node", "server")

    def __init__(self, client: Any, node: ClusterNode | None = None) -> None:
        self.client = client
        self.node = node
        servers = _servers.setdefault(client, {})
        key = None if node is None else node.name
        server = servers.get(key)
        self.server = server if server is not None else servers.setdefault(key, _Server())

    def forget(self, failure: DeletionFailed | None = None) -> None:
        """Forget what was learnt of this server (after an error: it may have restarted,
        been upgraded or replaced); after a `failure` a retry can cure, have a cluster's
        slot map read again."""
        servers = _servers.get(self.client)
        if servers is not None:
            servers.pop(None if self.node is None else self.node.name, None)
        if self.node is not None and (failure is None or failure.retryable):
            _stale_topology.add(self.client)

    async def send(
        self, commands: list[tuple[Any, ...]], *, raise_on_error: bool = True
    ) -> list[Any]:
        """Run `commands` in one round trip; with `raise_on_error=False` a command's error is
        its reply, else the first one is raised."""
        if self.node is None:
            return await _send(self.client, commands, raise_on_error=raise_on_error)
        return await _send_to_node(self.client, self.node, commands, raise_on_error)

    async def has_xackdel(self) -> bool:
        """Whether this server has XACKDEL and XDELEX, asked once (`COMMAND INFO`): calls
        that arrive while the question is in flight wait for its answer (a Batcher's
        concurrent flushes on a cold client would otherwise each ask, each on a connection
        of its own)."""
        server = self.server
        if server.xackdel is not None:
            return server.xackdel
        probing = server.probing
        if probing is None or probing.get_loop() is not asyncio.get_running_loop():
            probing = server.probing = asyncio.ensure_future(self._probe())
        return await asyncio.shield(probing)

    async def _probe(self) -> bool:
        try:
            (reply,) = await self.send([_PROBE])
            self.server.xackdel = answer = _names_a_command(reply)
            return answer
        finally:
            self.server.probing = None


def _names_a_command(reply: Any) -> bool:
    """Whether a `COMMAND INFO <name>` reply describes a command (`[None]`: unknown)."""
    return isinstance(reply, list) and bool(reply) and reply[0] is not None


def _as_route(target: Any) -> _Route:
    return target if isinstance(target, _Route) else _Route(target)


class RedisStreamAdapter(BaseAdapter):
    """Deletes Redis stream entries (`RedisStreamMessage`, `RedisBatchStreamMessage`).

    Semantics EXACT: only the message's own entries are removed, and by default only once no
    other consumer group still needs them (one has not read them yet, or has them pending):
    until then the entry is acknowledged in the message's own group and kept, with outcome
    `DEFERRED`, and the group that finishes last deletes it. On Redis >= 8.2 that is
    `XACKDEL`/`XDELEX … ACKED`; before, one server-side script per stream checks and
    deletes atomically. `ignore_other_groups=True` deletes at once, for every group
    (`DELREF` on 8.2, `MULTI XACK XDEL` before).

    `match_fields=True` proves each entry is the consumed message before deleting it: one
    server-side script per stream compares the fields stored under the entry's id with the
    fields the message was consumed with (by SHA-1) and acknowledges and deletes only the
    entries that match, atomically. An entry whose fields differ is another message under a
    reused id (the stream was deleted and re-created, and a producer set ids explicitly): it
    is left alone and unacknowledged, and the message's outcome is `ALREADY_GONE`.

    On a Redis Cluster (messages of FastStream's `RedisClusterBroker`, whose client is a
    `redis.asyncio.cluster.RedisCluster`) the commands are grouped by the node holding each
    stream's slot: one round trip per node, the nodes concurrently; no MULTI (it may span
    one slot only: before 8.2 `ignore_other_groups=True` sends one script per stream
    instead); each node asked on its own whether it has `XACKDEL`. A node that cannot be
    reached fails its own messages only (`retryable=True`), and the next call reads the slot
    map again, so after a failover a retry goes to the promoted replica; a redirection
    (`MOVED`, `ASK`) during a resharding is followed.

    By address: `delete_at(client, [RedisEntry(...)])` on a `redis.asyncio.Redis` (`connect`
    opens one for a `redis://` URL) or a `RedisCluster` (pass your own) deletes each entry as
    a message read in the address's group (or outside any group), with the same commands
    and the same outcomes. Every consumer group counts as another one: by default an entry
    any group still needs is kept, `DEFERRED`. An absent stream, a key that is not a
    stream, or a group the stream does not have is `NotDeletable`, found in one round trip
    before anything is deleted.
    """

    features = Features(BROKER, Semantics.EXACT, acknowledges=True, by_address=True)
    """Deleting also acknowledges the entry in its consumer group (XACKDEL, or XACK in the
    same round trip), so a caller that queues the deletion may skip FastStream's own XACK."""

    def __init__(
        self,
        *,
        ignore_other_groups: bool = False,
        match_fields: bool = False,
        wait_for_all_groups: bool | None = None,
    ) -> None:
        if not isinstance(ignore_other_groups, bool):
            raise TypeError(
                f"ignore_other_groups must be True or False, got {ignore_other_groups!r}"
            )
        if not isinstance(match_fields, bool):
            raise TypeError(f"match_fields must be True or False, got {match_fields!r}")
        if wait_for_all_groups is not None:
            warnings.warn(
                "RedisStreamAdapter(wait_for_all_groups=...) is deprecated: waiting for every "
                "group is the default now; pass ignore_other_groups=True to delete regardless",
                DeprecationWarning,
                stacklevel=2,
            )
            ignore_other_groups = not wait_for_all_groups
        self.ignore_other_groups = ignore_other_groups
        self.match_fields = match_fields
        if match_fields:  # an address names no consumed fields to compare: none is deleted
            self.features = Features(BROKER, Semantics.EXACT, acknowledges=True)

    def __repr__(self) -> str:
        match = ", match_fields=True" if self.match_fields else ""
        return f"RedisStreamAdapter(ignore_other_groups={self.ignore_other_groups}{match})"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Delete every message's entries: one round trip per Redis client (per node of a
        cluster client), outcomes in order.

        On a server with `XACKDEL` (Redis >= 8.2) that round trip is one command per stream
        and group (two when some of the group's messages are acknowledged already and others
        not); before, one script call per stream and group, and with
        `ignore_other_groups=True` one `MULTI` holding one `XACK` per stream and group and
        one `XDEL` per message (on a cluster: a script per stream and group).
        With `match_fields=True` it is one script call per stream and group, on any version.
        A message that cannot be addressed gets its own [`NotDeletable`][msgdel.NotDeletable]; a
        client that fails gives its [`DeletionFailed`][msgdel.DeletionFailed] to its own messages
        only, and the clients run concurrently.
        """
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(messages)
        plan = _Plan()
        for index, message in enumerate(messages):
            try:
                address = _address(message)
            except MsgdelError as exc:
                outcomes[index] = exc
                continue
            if address is None:
                outcomes[index] = _result(message, Outcome.SKIPPED, 0)
                continue
            digests: Sequence[str] = _NO_DIGESTS
            if self.match_fields:
                try:
                    digests = _field_digests(message, len(address[3]))
                except MsgdelError as exc:
                    outcomes[index] = exc
                    continue
            plan.add(index, address, digests)
        await self._delete(plan)
        plan.fill(outcomes, messages)
        return outcomes  # type: ignore[return-value]  # every message has its outcome now

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[Any]:
        """A `redis.asyncio.Redis` for `url` (`redis://`, `rediss://`, `unix://`, credentials
        from the URL), connected on entry and closed on exit. Unreachable:
        [`DeletionFailed`][msgdel.DeletionFailed] (`retryable=True`), without the password.
        A URL names one server: for a Redis Cluster, pass a
        `redis.asyncio.cluster.RedisCluster` of your own to `delete_at`."""
        return _connected(url)

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[DeleteResult | MsgdelError]:
        """Delete `addresses` ([`RedisEntry`][msgdel.address.RedisEntry]) on the
        `redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster` `connection`: one entry
        per address, in input order, exactly as
        [`delete_many`][msgdel.adapters.redis.RedisStreamAdapter.delete_many] deletes messages
        read in the address's group (or outside any group).

        One round trip (per node of a cluster) first checks every stream (`TYPE`) and every
        named group (`XINFO GROUPS`): an absent stream, a key of another type or a missing
        group makes its addresses [`NotDeletable`][msgdel.NotDeletable], and nothing is sent
        that deletes them; the others are deleted in the next round trip. A node that cannot
        be reached fails its own addresses only."""
        if not isinstance(connection, (Redis, RedisCluster)):
            raise UnsupportedDeletion(
                f"{self!r} deletes addresses on a redis.asyncio.Redis or "
                "redis.asyncio.cluster.RedisCluster client (or a redis:// URL), got "
                f"{type(connection).__module__}.{type(connection).__qualname__}; "
                "nothing was sent"
            )
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(addresses)
        wanted: list[int] = []
        for index, address in enumerate(addresses):
            problem = self._unaddressable(address)
            if problem is None:
                wanted.append(index)
            else:
                outcomes[index] = problem
        if wanted:
            refused = await _checked(connection, [addresses[i] for i in wanted])
            plan = _Plan()
            for index in wanted:
                address = addresses[index]
                problem = (
                    refused.get((address.stream, None))
                    or refused.get((address.stream, address.group))
                    or refused.get((address.stream, _UNCHECKED))
                )
                if problem is not None:
                    outcomes[index] = problem
                    continue
                ids = (address.entry_id.encode(),)
                plan.add(index, (connection, address.stream, address.group, ids, False), [])
            await self._delete(plan)
            plan.fill(outcomes, None)
        return outcomes  # type: ignore[return-value]  # every address has its outcome now

    def _unaddressable(self, address: Any) -> MsgdelError | None:
        """Why `address` cannot be deleted before anything is sent, or None."""
        if not isinstance(address, RedisEntry):
            return UnsupportedDeletion(
                f"{self!r} deletes RedisEntry addresses, got a {type(address).__name__}; "
                "nothing was sent"
            )
        if self.match_fields:
            return NotDeletable(
                f"{self!r} deletes an entry only if it holds the fields a consumed message "
                f"had, and the address {str(address)!r} names no consumed message; delete "
                "addresses with RedisStreamAdapter(match_fields=False). Nothing was sent"
            )
        entry_id = address.entry_id
        parts = entry_id.split("-")
        if not entry_id.isascii() or any(len(n) > 20 or int(n) > _MAX_ID_PART for n in parts):
            shown = entry_id if len(entry_id) <= 60 else f"{entry_id[:40]}...{entry_id[-10:]}"
            return NotDeletable(
                f"{shown!r} is not a Redis stream id: two numbers of ASCII digits, each at "
                f"most {_MAX_ID_PART}, such as '1700000000000-0'; nothing was sent"
            )
        return None

    async def _delete(self, plan: _Plan) -> None:
        """Delete `plan`'s buckets: one round trip per client, the clients concurrently."""
        by_client = plan.by_client()
        if len(by_client) == 1:
            await self._delete_on_client(by_client[0])
        elif by_client:
            await asyncio.gather(*(self._delete_on_client(b) for b in by_client))

    async def _delete_on_client(self, buckets: list[_Bucket]) -> None:
        """Delete the buckets of one client; a failure is recorded on them, never raised."""
        client = buckets[0].client
        if not isinstance(client, RedisCluster):
            await self._delete_on_route(_Route(client), buckets)
            return
        try:
            by_node = await _by_node(client, [bucket.stream for bucket in buckets])
        except _CLIENT_ERRORS as exc:
            _stale_topology.add(client)
            failure = _failure(exc)
            for bucket in buckets:
                bucket.fail(failure)
            return
        groups = [
            (_Route(client, node), [buckets[i] for i in indexes])
            for node, indexes in by_node.values()
        ]
        await asyncio.gather(*(self._delete_on_route(route, group) for route, group in groups))

    async def _delete_on_route(self, route: _Route, buckets: list[_Bucket]) -> None:
        """Delete the buckets on one server in one round trip (a second one only where an
        answer needs checking); a failure is recorded on them, never raised."""
        try:
            modern = await route.has_xackdel()
            if self.match_fields:
                await _matching(route, buckets, self.ignore_other_groups, modern)
            elif modern:
                await self._xackdel(route, buckets)
            elif not self.ignore_other_groups:
                await _scripted(route, buckets)
            elif route.node is None:
                await self._multi_xdel(route.client, buckets)
            else:  # a cluster: a MULTI cannot span slots, a script per stream is atomic
                await _ack_and_delete(route, buckets)
        except _CLIENT_ERRORS as exc:
            failure: MsgdelError = _failure(exc)
        except MsgdelError as exc:
            failure = exc
        else:
            return
        route.forget(failure if isinstance(failure, DeletionFailed) else None)
        for bucket in buckets:
            bucket.fail(failure)

    async def _xackdel(self, route: _Route, buckets: list[_Bucket]) -> None:
        """One XACKDEL (group, in `_COUNTED_XACKDEL`) or XDELEX (no group) per bucket: a reply
        code per entry."""
        policy = "DELREF" if self.ignore_other_groups else "ACKED"
        commands: list[tuple[Any, ...]] = []
        for bucket in buckets:
            # A message FastStream already acknowledged is no longer pending in its group, so
            # XACKDEL would skip it. DELREF: XDELEX deletes it and drops every group's
            # reference. ACKED: XACK it again first, in the same round trip, in case it was
            # marked acknowledged without an XACK reaching Redis (FastStream 0.6 can do that),
            # then XDELEX ACKED keeps it for any group that still needs it.
            bucket.xackdel = bucket.group is not None and not bucket.acked
            if bucket.acked and bucket.group is not None and not self.ignore_other_groups:
                commands.append(("XACK", bucket.stream, bucket.group, *bucket.ids))
            commands.append(_xackdel_command(bucket, policy))
        if any(bucket.xackdel for bucket in buckets):
            sent = await _evalsha(route, _COUNTED_XACKDEL, _COUNTED_XACKDEL_SHA, commands)
        else:
            sent = await route.send(commands, raise_on_error=False)
        replies = iter(sent)
        for bucket in buckets:
            if bucket.acked and bucket.group is not None and not self.ignore_other_groups:
                next(replies)  # the XACK's count (its error, if any, the XDELEX's too)
            reply = next(replies)
            if bucket.xackdel and not isinstance(reply, Exception):
                bucket.codes = _truthful(bucket.ids, *reply)
            else:
                _take_codes(route, bucket, reply)
        retried = await self._delete_already_acknowledged(route, buckets, policy)
        if policy == "ACKED":
            await _existing_or_gone(route, buckets, retried)

    @staticmethod
    async def _delete_already_acknowledged(
        route: _Route, buckets: list[_Bucket], policy: str
    ) -> dict[int, list[int]]:
        """XACKDEL skips an entry its group no longer has pending (acknowledged earlier):
        delete those with XDELEX, in one more round trip, only when there are any.
        Returns the positions retried, by `id()` of their bucket."""
        retry = [
            (bucket, [pos for pos, code in enumerate(bucket.codes) if code == _NOT_FOUND])
            for bucket in buckets
            if bucket.xackdel and _NOT_FOUND in bucket.codes
        ]
        if not retry:
            return {}
        commands = [
            ("XDELEX", b.stream, policy, "IDS", len(ps), *map(b.ids.__getitem__, ps))
            for b, ps in retry
        ]
        try:
            replies = await route.send(commands)
        except _CLIENT_ERRORS as exc:
            # The first round trip's answers stand; only the entries that needed this one fail.
            failure = _failure(exc)
            for bucket, positions in retry:
                bucket.fail(failure, positions)
            return {}
        for (bucket, positions), reply in zip(retry, replies):
            for pos, code in zip(positions, reply):
                bucket.codes[pos] = int(code)
        return {id(bucket): positions for bucket, positions in retry}

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


async def _existing_or_gone(
    route: _Route, buckets: list[_Bucket], retried: dict[int, list[int]]
) -> None:
    """`XDELEX … ACKED` answers "still referenced" (2) for an id the stream does not hold
    when a group has not read that far (Redis 8.2): look those ids up, in one more round
    trip only when there are any, so a missing entry is `ALREADY_GONE`, never `DEFERRED`.
    (`XACKDEL`'s 2 is not looked up: it found the entry pending, though not always stored:
    see `_COUNTED_XACKDEL`.)"""
    doubtful = []
    for bucket in buckets:
        codes, ids = bucket.codes, bucket.ids
        if _STILL_REFERENCED not in codes:  # the usual answer: nothing to look up
            continue
        positions = range(len(codes)) if not bucket.xackdel else retried.get(id(bucket), ())
        doubtful += [(bucket, p, ids[p]) for p in positions if codes[p] == _STILL_REFERENCED]
    if not doubtful:
        return
    try:
        found = await route.send([("XRANGE", b.stream, i, i) for b, _, i in doubtful])
    except _CLIENT_ERRORS as exc:
        # The entries were kept either way; only whether they exist is unknown: say so.
        failure = _failure(exc)
        unsure: dict[int, tuple[_Bucket, list[int]]] = {}
        for bucket, position, _ in doubtful:
            unsure.setdefault(id(bucket), (bucket, []))[1].append(position)
        for bucket, failed in unsure.values():
            bucket.fail(failure, failed)
        return
    for (bucket, position, _), entries in zip(doubtful, found):
        if not entries:
            bucket.codes[position] = _NOT_FOUND


_ACK_THEN_DELETE_IF_DONE = """
-- KEYS[1]: the stream; ARGV[1]: the reading group ('' for none); ARGV[2..]: entry ids.
-- Acknowledges each entry in the reading group, then deletes it only if no consumer group
-- still needs it (has not read it yet, or has it pending). Per id, as XACKDEL ... ACKED
-- replies on Redis 8.2: -1 no such entry, 1 deleted, 2 kept for another group.
local stream, own = KEYS[1], ARGV[1]
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function before(a, b)  -- stream id a < stream id b
  local ams, aseq = parse(a)
  local bms, bseq = parse(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
local groups = {}
if redis.call('EXISTS', stream) == 1 then  -- XINFO GROUPS fails on a deleted stream
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local group = {}
    for i = 1, #info, 2 do group[info[i]] = info[i + 1] end
    groups[#groups + 1] = group
  end
end
local codes = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  if own ~= '' then redis.call('XACK', stream, own, id) end
  local code = 1
  if #redis.call('XRANGE', stream, id, id) == 0 then
    code = -1
  else
    for _, group in ipairs(groups) do
      if before(group['last-delivered-id'], id)
         or #redis.call('XPENDING', stream, group['name'], id, id, 1) > 0 then
        code = 2
        break
      end
    end
    if code == 1 then redis.call('XDEL', stream, id) end
  end
  codes[#codes + 1] = code
end
return codes
"""
"""Before Redis 8.2: acknowledge and delete-when-no-group-needs-it, atomically per stream."""
_SCRIPT_SHA = hashlib.sha1(_ACK_THEN_DELETE_IF_DONE.encode()).hexdigest()


async def _scripted(target: Any, buckets: list[_Bucket]) -> None:
    """One EVALSHA per bucket, in one round trip: a reply code per entry, as XACKDEL's.
    `target`: a client or a `_Route`."""
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", _SCRIPT_SHA, 1, b.stream, b.group or "", *b.ids) for b in buckets
    ]
    route = _as_route(target)
    replies = await _evalsha(route, _ACK_THEN_DELETE_IF_DONE, _SCRIPT_SHA, commands)
    for bucket, reply in zip(buckets, replies):
        _take_codes(route, bucket, reply)


_ACK_AND_DELETE = """
-- KEYS[1]: the stream; ARGV[1]: the reading group ('' for none); ARGV[2..]: entry ids.
-- Acknowledges each entry in the reading group and deletes it, whatever other groups still
-- need (ignore_other_groups). Per id, as XACKDEL ... DELREF replies: -1 no such entry, 1 deleted.
local stream, own = KEYS[1], ARGV[1]
local codes = {}
for i = 2, #ARGV do
  if own ~= '' then redis.call('XACK', stream, own, ARGV[i]) end
  codes[#codes + 1] = redis.call('XDEL', stream, ARGV[i]) == 1 and 1 or -1
end
return codes
"""
"""Before Redis 8.2, on a cluster: `MULTI XACK XDEL EXEC`, atomically per stream (one slot)."""
_ACK_AND_DELETE_SHA = hashlib.sha1(_ACK_AND_DELETE.encode()).hexdigest()


async def _ack_and_delete(route: _Route, buckets: list[_Bucket]) -> None:
    """One EVALSHA per bucket, in one round trip: acknowledged and deleted for every group."""
    commands: list[tuple[Any, ...]] = [
        ("EVALSHA", _ACK_AND_DELETE_SHA, 1, b.stream, b.group or "", *b.ids) for b in buckets
    ]
    replies = await _evalsha(route, _ACK_AND_DELETE, _ACK_AND_DELETE_SHA, commands)
    for bucket, reply in zip(buckets, replies):
        _take_codes(route, bucket, reply)


async def _evalsha(
    target: Any, script: str, sha: str, commands: list[tuple[Any, ...]]
) -> list[Any]:
    """Run `commands` (the `EVALSHA`s of `script`, and any others) in one round trip on
    `target` (a client or a `_Route`), loading the script in the same round trip the first
    time per server; a server that lost it (SCRIPT FLUSH, a failover) runs the `EVALSHA`s it
    refused again, after loading it, and nothing else twice. A command's error is its reply
    (the others ran: see `_take_codes`); an unreachable server raises."""
    route = _as_route(target)
    loaded = route.server.scripts
    load = ("SCRIPT", "LOAD", script)
    first = sha not in loaded
    replies = await route.send([load, *commands] if first else commands, raise_on_error=False)
    if first:
        replies = replies[1:]
    refused = [
        i for i, reply in enumerate(replies) if isinstance(reply, redis_errors.NoScriptError)
    ]
    if refused:
        again = await route.send([load, *(commands[i] for i in refused)], raise_on_error=False)
        for position, reply in zip(refused, again[1:]):
            replies[position] = reply
    loaded.add(sha)
    return replies


def _take_codes(route: _Route, bucket: _Bucket, reply: Any) -> None:
    """A bucket's reply: its codes, or the error Redis refused its command with. That error
    is the bucket's alone: the commands of the other buckets in the round trip ran. (What was
    learnt of the server is forgotten then, as after any error.)"""
    if isinstance(reply, Exception):
        failure = _failure(reply)
        bucket.fail(failure)
        route.forget(failure)
    else:
        bucket.codes = [int(code) for code in reply]


_DELETE_IF_FIELDS_MATCH = """
-- KEYS[1]: the stream; ARGV[1]: the reading group ('' for none); ARGV[2]: 'ACKED' (keep an
-- entry another group still needs) or 'DELREF' (delete regardless); ARGV[3]: '1' on Redis
-- >= 8.2 (XDELEX); ARGV[4..]: pairs of an entry id and the SHA-1 of the fields the message
-- was consumed with ("<length>:<bytes>" of each field and value, in order).
-- Only an entry whose stored fields have that digest is acknowledged and deleted: another
-- one under the same id (a re-created stream) is left alone, unacknowledged. An absent entry
-- is acknowledged (that clears a dangling pending reference). Per id, as XACKDEL replies:
-- -1 absent or another message, 1 deleted, 2 kept for another group.
local stream, own, policy, modern = KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1'
local function digest(fields)
  local parts = {}
  for i, value in ipairs(fields) do parts[i] = #value .. ':' .. value end
  return redis.sha1hex(table.concat(parts))
end
local function chunked(list, call)  -- unpack() is limited to a few thousand values
  for first = 1, #list, 1000 do call(unpack(list, first, math.min(first + 999, #list))) end
end
local codes, ack, same = {}, {}, {}
for i = 4, #ARGV, 2 do
  local id = ARGV[i]
  local entry = redis.call('XRANGE', stream, id, id)[1]
  local code = -1
  if entry == nil then
    ack[#ack + 1] = id
  elseif digest(entry[2]) == ARGV[i + 1] then
    code = 0  -- the consumed message: decided below
    ack[#ack + 1] = id
    same[#same + 1] = id
  end
  codes[#codes + 1] = code
end
if own ~= '' and #ack > 0 then
  chunked(ack, function(...) redis.call('XACK', stream, own, ...) end)
end
local decided = {}
if modern then
  chunked(same, function(...)
    for _, code in ipairs(redis.call('XDELEX', stream, policy, 'IDS', select('#', ...), ...)) do
      decided[#decided + 1] = code
    end
  end)
else
  local groups = {}
  if policy == 'ACKED' and #same > 0 then  -- XINFO GROUPS fails on a missing key
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      local group = {}
      for i = 1, #info, 2 do group[info[i]] = info[i + 1] end
      groups[#groups + 1] = group
    end
  end
  local function before(a, b)  -- stream id a < stream id b
    local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
    local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
    ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
    return ams < bms or (ams == bms and aseq < bseq)
  end
  for _, id in ipairs(same) do
    local code = 1
    for _, group in ipairs(groups) do
      if before(group['last-delivered-id'], id)
         or #redis.call('XPENDING', stream, group['name'], id, id, 1) > 0 then
        code = 2
        break
      end
    end
    if code == 1 then redis.call('XDEL', stream, id) end
    decided[#decided + 1] = code
  end
end
local next_decided = 1
for i, code in ipairs(codes) do
  if code == 0 then
    codes[i] = decided[next_decided]
    next_decided = next_decided + 1
  end
end
return codes
"""
"""`match_fields=True`, on every Redis version: delete an entry only if it is still the
consumed message, atomically per stream."""
_MATCH_SHA = hashlib.sha1(_DELETE_IF_FIELDS_MATCH.encode()).hexdigest()

_COUNTED_XACKDEL = """
-- KEYS[1]: the stream; ARGV[1]: the group; ARGV[2]: 'ACKED' or 'DELREF'; ARGV[3..]: ids.
-- XACKDEL with what its reply cannot tell (msgdel's _truthful): returns how many entries
-- the stream lost, the id of its first entry before (nil: it was empty), and the codes.
local stream, group, policy = KEYS[1], ARGV[1], ARGV[2]
local before = redis.call('XLEN', stream)
local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
local codes = {}
for from = 3, #ARGV, 4000 do  -- unpack() is limited to a few thousand values
  local to = math.min(from + 3999, #ARGV)
  local got = redis.call('XACKDEL', stream, group, policy, 'IDS', to - from + 1,
                         unpack(ARGV, from, to))
  if from == 3 and to == #ARGV then codes = got break end
  for _, code in ipairs(got) do codes[#codes + 1] = code end
end
return {before - redis.call('XLEN', stream), first and first[1] or false, codes}
"""
"""Redis 8.2's XACKDEL answers 1 (deleted) for an entry its group had pending even when the
stream no longer held it (XDEL'd, or trimmed by `XADD … MAXLEN` or `XTRIM`, while pending):
so it runs in this script, which also measures what the stream lost, atomically. One
command, as the bare XACKDEL was: about 10 µs more for one id, 150 µs for 500. (It answers
2, kept, for such an entry when another group still references it; that is left as Redis
says: the entry is not claimed deleted, and the last group's delete finds it gone.)"""
_COUNTED_XACKDEL_SHA = hashlib.sha1(_COUNTED_XACKDEL.encode()).hexdigest()


_SCRIPTS = {
    _COUNTED_XACKDEL_SHA: _COUNTED_XACKDEL,
    _SCRIPT_SHA: _ACK_THEN_DELETE_IF_DONE,
    _ACK_AND_DELETE_SHA: _ACK_AND_DELETE,
    _MATCH_SHA: _DELETE_IF_FIELDS_MATCH,
}
"""Every script, by SHA-1: a redirected EVALSHA is sent again as an EVAL."""


async def _matching(route: _Route, buckets: list[_Bucket], delref: bool, modern: bool) -> None:
    """One script call per bucket, in one round trip: each entry is acknowledged and deleted
    only if its stored fields are the consumed message's; a reply code per entry."""
    policy = "DELREF" if delref else "ACKED"
    commands: list[tuple[Any, ...]] = [
        (
            "EVALSHA", _MATCH_SHA, 1, b.stream, b.group or "", policy, "1" if modern else "0",
            *chain.from_iterable(zip(b.ids, b.digests)),
        )
        for b in buckets
    ]  # fmt: skip
    replies = await _evalsha(route, _DELETE_IF_FIELDS_MATCH, _MATCH_SHA, commands)
    for bucket, reply in zip(buckets, replies):
        _take_codes(route, bucket, reply)


def _field_digests(message: Any, count: int) -> list[str]:
    """The SHA-1 of each entry's fields as the message was consumed, as the script computes
    it; `NotDeletable` when the message does not hold them."""
    data = message.raw_message.get("data")
    entries = [data] if count == 1 and isinstance(data, dict) else data
    if not isinstance(entries, list) or len(entries) != count:
        entries = None
    digests = []
    for fields in entries or ():
        if not isinstance(fields, dict) or not fields:
            break
        flat = chain.from_iterable(fields.items())
        encoded = (x if type(x) is bytes else str(x).encode() for x in flat)
        digests.append(hashlib.sha1(b"".join(b"%d:%b" % (len(x), x) for x in encoded)))
    if len(digests) != count:
        raise NotDeletable(
            "match_fields=True compares the stored entry with the fields the message was "
            "consumed with, and this message does not hold them (raw_message['data']); "
            "nothing was deleted"
        )
    return [digest.hexdigest() for digest in digests]


class _Plan:
    """What one call deletes: its addresses in buckets, one per client, stream, group and
    acknowledgement state, each remembering every address's place in the caller's list."""

    __slots__ = ("buckets", "last")

    def __init__(self) -> None:
        self.buckets: dict[tuple[int, str, str | None, bool], _Bucket] = {}
        self.last: _Bucket | None = None  # the bucket the latest address went to

    def add(self, index: int, address: _Address, digests: Sequence[str]) -> None:
        """Put the entries at `address` (the caller's `index`) in their bucket."""
        client, stream, group, ids, acked = address
        bucket = self.last
        if (
            bucket is None
            or bucket.client is not client
            or bucket.stream != stream
            or bucket.group != group
            or bucket.acked is not acked
        ):  # not the previous message's bucket (a call's messages mostly share one)
            key = (id(client), stream, group, acked)
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = _Bucket(client, stream, group, acked)
            self.last = bucket
        bucket.indexes.append(index)
        bucket.message_ids.append(ids)
        if len(ids) == 1:
            bucket.ids.append(ids[0])
        else:
            bucket.ids.extend(ids)
            bucket.single = False
        if digests:
            bucket.digests.extend(digests)

    def by_client(self) -> list[list[_Bucket]]:
        """The buckets, grouped by client."""
        grouped: dict[int, list[_Bucket]] = {}
        for (client_id, *_), bucket in self.buckets.items():
            grouped.setdefault(client_id, []).append(bucket)
        return list(grouped.values())

    def fill(
        self, outcomes: list[DeleteResult | MsgdelError | None], messages: Sequence[Any] | None
    ) -> None:
        """Put every address's outcome at its place (see `_Bucket.fill`)."""
        for bucket in self.buckets.values():
            bucket.fill(outcomes, messages)


class _Bucket:
    """The messages of one stream and group on one client, and what Redis answered for them."""

    __slots__ = (
        "acked", "client", "codes", "digests", "error", "failed", "group", "ids", "indexes",
        "message_ids", "removed", "single", "stream", "xackdel",
    )  # fmt: skip

    def __init__(self, client: Any, stream: str, group: str | None, acked: bool) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.acked = acked  # its messages are marked acknowledged already
        self.xackdel = False  # deleted with XACKDEL (else XDELEX)
        self.indexes: list[int] = []  # each message's position in the caller's list
        self.message_ids: list[tuple[bytes, ...]] = []  # each message's entry ids
        self.ids: list[bytes] = []  # every message's ids, in message order
        self.single = True  # every message has one entry id
        self.codes: list[int] = []  # XACKDEL/XDELEX: a code per id, in message order
        self.removed: list[int] = []  # MULTI XDEL: a count per message
        self.digests: list[str] = []  # match_fields: each id's SHA-1 of its consumed fields
        self.error: MsgdelError | None = None  # why some or all of its messages failed
        self.failed: frozenset[int] | None = None  # the failed id positions; None: every one

    def fail(self, error: MsgdelError, positions: Sequence[int] | None = None) -> None:
        """Record `error` for the messages holding the ids at `positions` (default: all)."""
        self.error = error
        self.failed = None if positions is None else frozenset(positions)

    def fill(
        self, outcomes: list[DeleteResult | MsgdelError | None], messages: Sequence[Any] | None
    ) -> None:
        """Put each message's outcome at its index: its result, or the error it failed with.

        A message read in a group that has a result is marked acknowledged: its deletion
        acknowledged it, so FastStream sends no XACK of its own (`messages` is None for
        addresses: there is no message to mark)."""
        stream, exact, error, failed = self.stream, Semantics.EXACT, self.error, self.failed
        settle = messages if self.group is not None else None
        if error is None and self.single and self.codes:  # the bulk path, column by column
            made = results(
                BROKER, stream, list(zip(map(bytes.decode, self.ids))), exact,
                list(map(_OUTCOME_BY_CODE.get, self.codes, repeat(Outcome.ALREADY_GONE))),
                list(map(_REMOVED_BY_CODE.get, self.codes, repeat(0))),
            )  # fmt: skip
            for index, result in zip(self.indexes, made):
                outcomes[index] = result
            if settle is not None:
                for index in self.indexes:
                    mark_settled(settle[index])
            return
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
            if settle is not None:
                mark_settled(settle[index])


_REFUSED_CREDENTIALS = (
    redis_errors.AuthenticationError,
    redis_errors.AuthorizationError,
    redis_errors.NoPermissionError,
    redis_errors.AuthenticationWrongNumberOfArgsError,
)


_CLIENT_ERRORS = (redis_errors.RedisError, redis_errors.RedisClusterException)
"""What redis-py raises for a server's or a cluster's refusal or absence (its cluster errors
that the client finds itself, such as an uncovered slot, are no `RedisError`)."""

_CLUSTER_IN_TRANSITION = (
    redis_errors.ClusterDownError,  # also MASTERDOWN
    redis_errors.TryAgainError,
    redis_errors.SlotNotCoveredError,
)
"""A cluster failing over or resharding: the same call can succeed once it is done."""


def _failure(exc: Exception) -> DeletionFailed:
    """What a redis-py error means for the deletions it interrupted."""
    if isinstance(exc, _REFUSED_CREDENTIALS) or "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
        return DeletionFailed(
            f"Redis refused the credentials or the permission ({type(exc).__name__}: {exc}); "
            "nothing was deleted, and retrying with the same credentials cannot succeed: fix "
            "the password or the ACL of the connection FastStream uses",
            retryable=False,
            cause=exc,
        )
    unreachable = (redis_errors.ConnectionError, redis_errors.TimeoutError)
    if isinstance(exc, unreachable) or (
        # a cluster client none of whose nodes answers: its ConnectionError is the cause
        isinstance(exc, redis_errors.RedisClusterException)
        and isinstance(exc.__cause__, unreachable)
    ):
        return DeletionFailed(
            f"Redis could not be reached ({exc}); nothing is known to be deleted, and "
            "retrying is safe: an entry already gone reports ALREADY_GONE",
            retryable=True,
            cause=exc,
        )
    if isinstance(exc, redis_errors.ReadOnlyError):
        return DeletionFailed(
            f"the Redis server is a replica now ({exc}): a failover moved the master; "
            "nothing was deleted, and retrying is safe once the client reaches the new master",
            retryable=True,
            cause=exc,
        )
    if isinstance(exc, _CLUSTER_IN_TRANSITION) or (
        # redis-py gave up following MOVED/ASK redirections: a slot migrating right now
        isinstance(exc, redis_errors.ClusterError) and "TTL exhausted" in str(exc)
    ):
        return DeletionFailed(
            f"the Redis cluster cannot serve this slot now ({type(exc).__name__}: {exc}): a "
            "failover or a resharding is under way; nothing is known to be deleted, and "
            "retrying is safe once it is done: an entry already gone reports ALREADY_GONE",
            retryable=True,
            cause=exc,
        )
    return DeletionFailed(
        f"Redis refused the deletion of these entries: {exc} (the same deletion fails the same "
        "way until the key or the server changes; other streams of the call are unaffected)",
        retryable=False,
        cause=exc,
    )


_BY_CODE = {
    _DELETED: (Outcome.DELETED, 1),
    _NOT_FOUND: (Outcome.ALREADY_GONE, 0),
    _WAS_GONE: (Outcome.ALREADY_GONE, 0),
    _STILL_REFERENCED: (Outcome.DEFERRED, 0),
}
"""What one XACKDEL/XDELEX reply code means for a single-entry message."""
_NO_DIGESTS: tuple[str, ...] = ()

_OUTCOME_BY_CODE = {code: outcome for code, (outcome, _) in _BY_CODE.items()}
_REMOVED_BY_CODE = {code: removed for code, (_, removed) in _BY_CODE.items()}


def _combined(codes: list[int]) -> tuple[Outcome, int]:
    """The outcome of a message with several entries: DEFERRED if any entry is still
    referenced, else DELETED if any was removed, else ALREADY_GONE."""
    removed = codes.count(_DELETED)
    if _STILL_REFERENCED in codes:
        return Outcome.DEFERRED, removed
    return (Outcome.DELETED if removed else Outcome.ALREADY_GONE), removed


def _xackdel_command(bucket: _Bucket, policy: str) -> tuple[Any, ...]:
    """XDELEX; or, for entries pending in the bucket's group, XACKDEL in `_COUNTED_XACKDEL`."""
    ids = bucket.ids
    if not bucket.xackdel:
        return ("XDELEX", bucket.stream, policy, "IDS", len(ids), *ids)
    return ("EVALSHA", _COUNTED_XACKDEL_SHA, 1, bucket.stream, bucket.group, policy, *ids)


def _truthful(ids: Sequence[bytes], removed: int, first: Any, codes: Sequence[Any]) -> list[int]:
    """The codes of a `_COUNTED_XACKDEL`, none claiming a deletion that was not.

    When the stream lost as many entries as the codes say were deleted (the usual case,
    checked at once), every 1 is true. Else some of those entries were gone already: an id
    below the stream's first entry before the command was (trimmed, or deleted from the
    head), so its 1 (or 2) is `_WAS_GONE`; if that does not account for all of them, an
    entry was XDEL'd from the middle while pending, which cannot be told apart, so every 1
    is `_WAS_GONE` (each of those entries is gone; which of them this call removed is
    unknown): `DELETED` is never claimed for what was not removed."""
    codes = [int(code) for code in codes]
    removed = int(removed)
    if codes.count(_DELETED) <= removed:
        return codes
    floor = None if first is None else _entry_key(first)
    for position, code in enumerate(codes):
        if code > 0 and (floor is None or _entry_key(ids[position]) < floor):
            codes[position] = _WAS_GONE
    if codes.count(_DELETED) > removed:
        codes = [_WAS_GONE if code == _DELETED else code for code in codes]
    return codes


def _entry_key(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id (`b"1700000000000-3"`) in the order Redis keeps entries."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


@contextlib.asynccontextmanager
async def _connected(url: str) -> AsyncIterator[Redis]:
    """A client for `url`, connected (whether its server has XACKDEL asked, as a delete
    needs it) and closed on exit."""
    try:
        client = Redis.from_url(url)
    except ValueError as exc:
        raise DeletionFailed(
            f"redis-py cannot open {redact(url)!r}: {exc}; nothing was sent", retryable=False
        ) from None
    try:
        try:
            await _Route(client).has_xackdel()
        except redis_errors.RedisError as exc:
            raise _failure(exc) from None
        yield client
    finally:
        close = getattr(client, "aclose", None) or client.close  # close(): redis-py < 5.0.1
        await close()


async def _refused_streams(
    target: Any, addresses: Sequence[RedisEntry]
) -> dict[tuple[str, str | None], MsgdelError]:
    """Why some addresses' streams or groups cannot be deleted from, in one round trip to
    `target` (a client or a `_Route`): a `TYPE` per stream, an `XINFO GROUPS` per stream
    where a group is named (and whether the server has XACKDEL, when that is not known yet).
    Keys: `(stream, None)` for the stream, `(stream, group)` for a group it lacks."""
    route = _as_route(target)
    streams = list(dict.fromkeys(a.stream for a in addresses))
    grouped = list(dict.fromkeys(a.stream for a in addresses if a.group is not None))
    probe = route.server.xackdel is None
    commands: list[tuple[Any, ...]] = [("TYPE", stream) for stream in streams]
    # redis-py parses an XINFO GROUPS reply into one dict per group
    commands += [("XINFO GROUPS", stream) for stream in grouped]
    if probe:
        commands.append(_PROBE)
    replies = await route.send(commands, raise_on_error=False)
    if probe:
        info = replies.pop()
        if isinstance(info, Exception):
            raise info
        route.server.xackdel = _names_a_command(info)
    refused: dict[tuple[str, str | None], MsgdelError] = {}
    for stream, kind in zip(streams, replies):
        if isinstance(kind, Exception):
            refused[(stream, None)] = _failure(kind)
        elif _text(kind) == "none":
            refused[(stream, None)] = NotDeletable(
                f"Redis has no stream {stream!r} (no such key); nothing was deleted"
            )
        elif _text(kind) != "stream":
            refused[(stream, None)] = NotDeletable(
                f"the Redis key {stream!r} holds a {_text(kind)}, not a stream: nothing was deleted"
            )
    named: dict[str, set[str]] = {}
    for address in addresses:
        if address.group is not None:
            named.setdefault(address.stream, set()).add(address.group)
    for stream, groups in zip(grouped, replies[len(streams) :]):
        if (stream, None) in refused:
            continue
        if isinstance(groups, Exception):
            failure = _failure(groups)
            refused.update({(stream, group): failure for group in named[stream]})
            continue
        names = sorted(_text(g.get("name", g.get(b"name"))) for g in groups)
        listed = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
        for group in sorted(named[stream].difference(names)):
            refused[(stream, group)] = NotDeletable(
                f"the Redis stream {stream!r} has no consumer group {group!r} (its groups: "
                f"{listed or 'none'}); nothing was deleted"
            )
    return refused


_UNCHECKED = "\x00unchecked"
"""A `_checked` key: the stream's server could not be asked (its error is the value)."""


async def _checked(
    connection: Any, addresses: Sequence[RedisEntry]
) -> dict[tuple[str, str | None], MsgdelError]:
    """`_refused_streams` of `addresses` on a client, or on each node of a cluster client
    that holds some (the nodes concurrently): a server that cannot be asked gives its
    failure to its streams, as `(stream, _UNCHECKED)`."""
    if isinstance(connection, RedisCluster):
        try:
            by_node = await _by_node(connection, [a.stream for a in addresses])
        except _CLIENT_ERRORS as exc:
            failure = _failure(exc)
            return {(a.stream, _UNCHECKED): failure for a in addresses}
        groups = [
            (_Route(connection, node), [addresses[i] for i in positions])
            for node, positions in by_node.values()
        ]
    else:
        groups = [(_Route(connection), list(addresses))]

    async def check(route: _Route, some: list[RedisEntry]) -> dict[Any, MsgdelError]:
        try:
            return await _refused_streams(route, some)
        except _CLIENT_ERRORS as exc:
            failure = _failure(exc)
            route.forget(failure)
            return {(a.stream, _UNCHECKED): failure for a in some}

    refused: dict[tuple[str, str | None], MsgdelError] = {}
    for found in await asyncio.gather(*(check(route, some) for route, some in groups)):
        refused.update(found)
    return refused


def _text(value: Any) -> str:
    """A reply as text, whether the client decodes replies or not."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def _send(
    client: Any, commands: list[tuple[Any, ...]], *, raise_on_error: bool = True
) -> list[Any]:
    """Run `commands` in one round trip: a plain command when there is one, else a pipeline.
    With `raise_on_error=False` a command's error is its reply, else the first one is raised."""
    if len(commands) == 1:
        try:
            return [await client.execute_command(*commands[0])]
        except redis_errors.ResponseError as exc:
            if raise_on_error:
                raise
            return [exc]
    async with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=raise_on_error))


_REDIRECTED = (redis_errors.AskError, redis_errors.TryAgainError)  # AskError: also MOVED


async def _send_to_node(
    client: Any, node: ClusterNode, commands: list[tuple[Any, ...]], raise_on_error: bool
) -> list[Any]:
    """Run `commands` on the cluster `node` in one round trip (redis-py's own per-node
    pipeline, which never retries nor closes the client's other connections). A command the
    node redirects (`MOVED`, `ASK`: its slot moved; `TRYAGAIN`) is sent again through the
    cluster client, which follows the redirection, an `EVALSHA` as an `EVAL`, since the
    node it lands on may not have the script. An unreachable node raises its error."""
    stack = [PipelineCommand(position, *command) for position, command in enumerate(commands)]
    await node.execute_pipeline(stack)
    replies = []
    for command in stack:
        reply = command.result
        if isinstance(reply, _REDIRECTED):
            args = command.args
            if args[0] == "EVALSHA":
                args = ("EVAL", _SCRIPTS[args[1]], *args[2:])
            try:
                reply = await client.execute_command(*args)
            except _CLIENT_ERRORS as exc:
                reply = exc
        if raise_on_error and isinstance(reply, Exception):
            raise reply
        replies.append(reply)
    return replies


async def _by_node(client: Any, keys: Sequence[str]) -> dict[str, tuple[ClusterNode, list[int]]]:
    """The positions of `keys`, by the name of the cluster node holding each key's slot (the
    slot map read again first if a node of `client` could not be reached last time)."""
    if client in _stale_topology:
        _stale_topology.discard(client)
        try:
            await client.nodes_manager.initialize()
        except BaseException:
            _stale_topology.add(client)
            raise
    else:
        await client.initialize()  # reads the slot map once; a no-op after
    by_node: dict[str, tuple[ClusterNode, list[int]]] = {}
    for position, key in enumerate(keys):
        node = client.get_node_from_key(key)
        by_node.setdefault(node.name, (node, []))[1].append(position)
    return by_node


class RedisListAdapter(BaseAdapter):
    """List messages (`RedisListMessage`, `RedisBatchListMessage`) were popped on read."""

    features = Features(BROKER, Semantics.NOT_STORED, coalesces=False)

    def __repr__(self) -> str:
        return "RedisListAdapter()"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Send nothing; every outcome is `ALREADY_GONE` (`NotDeletable` for a message
        that is no consumed FastStream Redis message; `SKIPPED` inside a handler of
        FastStream's in-memory test broker)."""
        return [_not_stored(m, _in_memory_or(Outcome.ALREADY_GONE, m)) for m in messages]


class RedisChannelAdapter(BaseAdapter):
    """Pub/sub messages (`RedisChannelMessage`) are never stored by Redis."""

    features = Features(
        BROKER, Semantics.NOT_STORED, coalesces=False, repeat=Outcome.NOTHING_STORED
    )

    def __repr__(self) -> str:
        return "RedisChannelAdapter()"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Send nothing; every outcome is `NOTHING_STORED` (`NotDeletable` for a message
        that is no consumed FastStream Redis message; `SKIPPED` inside a handler of
        FastStream's in-memory test broker)."""
        return [_not_stored(m, _in_memory_or(Outcome.NOTHING_STORED, m)) for m in messages]


def _in_memory_or(outcome: Outcome, message: Any) -> Outcome:
    """`SKIPPED` inside a handler of FastStream's in-memory test broker, else `outcome`.

    A list or pub/sub message of `TestRedisBroker` is built exactly like a real one (same
    class, same raw message, no client bound to it): only the running handler's broker tells.
    """
    return Outcome.SKIPPED if under_test_broker(handler_config(message)) else outcome


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
    # `committed` is None for nearly every message: then no call is needed to know it
    acked = group is not None and getattr(message, "committed", None) is not None
    acked = acked and is_acknowledged(message)
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
