"""The Redis streams reaper: pending entries of one consumer group that no consumer will finish."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

try:
    from redis import exceptions as redis_errors
    from redis.asyncio import Redis
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("redis") from exc

import msgdel
from msgdel.adapters.redis import XACKDEL_VERSION, RedisStreamAdapter, server_version
from msgdel.address import RedisEntry
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, redact
from msgdel.observe import DeletionReport
from msgdel.reaper._base import SAMPLE, Pace, Policy, Runner, SweepReport, Tally, positive
from msgdel.registry import Registry, default_registry
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

ORIGIN_STREAM = "msgdel-origin-stream"
ORIGIN_ID = "msgdel-origin-id"
ORIGIN_GROUP = "msgdel-origin-group"
ORIGIN_CONSUMER = "msgdel-origin-consumer"
DELIVERIES = "msgdel-deliveries"
"""The fields a dead-letter copy has beside the entry's own (which it keeps, in order)."""


# Each script re-reads, atomically with what it changes, whether the entry is still pending in
# the group and still dead by the policy: another reaper, or a consumer that claimed or
# acknowledged it since the page was read, leaves it to them ("released").
_STILL_DEAD = """
local stream, group = KEYS[1], ARGV[1]
local min_deliveries, min_idle = tonumber(ARGV[2]), tonumber(ARGV[3])
local function still_dead(id)
  local p = redis.call('XPENDING', stream, group, id, id, 1)[1]
  if p == nil then return nil end
  if (min_deliveries > 0 and p[4] >= min_deliveries) or (min_idle >= 0 and p[3] >= min_idle)
  then return p end
  return nil
end
"""

_TRIAGE = (
    _STILL_DEAD
    + """
-- ARGV[4..]: entry ids. Per id: 0 released, -1 its payload is gone (it is acknowledged away
-- now), 1 still dead and stored (to be deleted next, through the adapter).
local codes = {}
for i = 4, #ARGV do
  local id, code = ARGV[i], 0
  if still_dead(id) then
    if #redis.call('XRANGE', stream, id, id) == 0 then
      redis.call('XACK', stream, group, id)
      code = -1
    else
      code = 1
    end
  end
  codes[#codes + 1] = code
end
return codes
"""
)
"""Delete-only: sort a page of dead ids before the adapter deletes the live ones."""

_COPY_THEN_DELETE = (
    _STILL_DEAD
    + """
-- KEYS[2]: the dead-letter stream; ARGV[4]: 'ACKED' (keep an entry another group still
-- needs) or 'DELREF'; ARGV[5]: '1' where XACKDEL exists; ARGV[6..]: entry ids.
-- Per id, a code and the copy's id ('' for none): 0 released, -1 payload gone (acknowledged
-- away, nothing copied), 1 copied and deleted, 2 copied, acknowledged, kept for another group.
local dlq, policy, modern = KEYS[2], ARGV[4], ARGV[5] == '1'
local kind = redis.call('TYPE', dlq)['ok']
if kind ~= 'none' and kind ~= 'stream' then
  return redis.error_reply('WRONGTYPE the dead-letter key ' .. dlq .. ' holds a ' .. kind ..
                           ', not a stream: nothing was copied or deleted')
end
local function before(a, b)  -- stream id a < stream id b
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  return ams < bms or (ams == bms and aseq < bseq)
end
local groups = nil
local function others_need(id)  -- before XACKDEL: does a consumer group still need id?
  if groups == nil then
    groups = {}
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      local g = {}
      for j = 1, #info, 2 do g[info[j]] = info[j + 1] end
      groups[#groups + 1] = g
    end
  end
  for _, g in ipairs(groups) do
    if before(g['last-delivered-id'], id)
       or #redis.call('XPENDING', stream, g['name'], id, id, 1) > 0 then
      return true
    end
  end
  return false
end
local out = {}
for i = 6, #ARGV do
  local id, code, copy = ARGV[i], 0, ''
  local p = still_dead(id)
  if p then
    local entry = redis.call('XRANGE', stream, id, id)[1]
    if entry == nil then
      redis.call('XACK', stream, group, id)
      code = -1
    else
      local fields = entry[2]
      for _, extra in ipairs({
        'msgdel-origin-stream', stream, 'msgdel-origin-id', id, 'msgdel-origin-group', group,
        'msgdel-origin-consumer', p[2], 'msgdel-deliveries', tostring(p[4]),
      }) do fields[#fields + 1] = extra end
      copy = redis.call('XADD', dlq, '*', unpack(fields))
      if modern then
        code = redis.call('XACKDEL', stream, group, policy, 'IDS', 1, id)[1]
      else
        redis.call('XACK', stream, group, id)
        if policy == 'ACKED' and others_need(id) then
          code = 2
        else
          redis.call('XDEL', stream, id)
          code = 1
        end
      end
    end
  end
  out[#out + 1] = code
  out[#out + 1] = copy
end
return out
"""
)
"""Copy-then-delete: copy each dead entry to the dead-letter stream and acknowledge and
delete it, in one script: atomic on the server, so it is in one place or the other."""


class RedisReaper(Runner):
    """Reaps the dead entries of one stream's consumer group (see [`Policy`][msgdel.reaper.Policy]).

    A sweep reads the group's pending list (`XPENDING`, `IDLE` when only `min_idle` is given)
    in pages of `page_size`, at most `rate` dead entries a second, and holds no more than one
    page at a time. Per page, one server-side script checks again, atomically, that each entry
    is still pending and still dead; an entry whose payload is gone (deleted, still pending)
    is acknowledged away and reported `ALREADY_GONE`. Then:

    - delete only: the live dead entries are deleted through
      [`msgdel.delete_at`][msgdel.delete_at] with
      `RedisStreamAdapter(ignore_other_groups=policy.ignore_other_groups)`: acknowledged and
      deleted, with that adapter's results, seen by the registry's observers;
    - with `policy.dead_letter`: the script itself copies each entry to the dead-letter stream
      (its fields in order, then `msgdel-origin-stream`, `-id`, `-group`, `-consumer` and
      `msgdel-deliveries`) and acknowledges and deletes it (`XACKDEL` on Redis >= 8.2,
      `XACK`+`XDEL` before): an entry is always pending or copied, never neither, and, since
      an entry no longer pending is not copied, never copied twice, whether the connection
      drops, the reaper restarts, or two reapers sweep the same group at once. The results
      are reported to the registry's observers as a `delete_at` of the adapter.

    `dry_run=True` reads the pending list and changes nothing: every dead entry is `SKIPPED`.
    On a Redis Cluster the stream and the dead-letter stream must share a hash slot
    (`{orders}` and `{orders}:dead`).

    `connection` is a `redis.asyncio.Redis`, or a URL: then a client is opened by `start()`
    (or `async with`) and closed by `stop()`, or for the one sweep when called outside.
    """

    def __init__(
        self,
        connection: Redis | str,
        *,
        stream: str,
        group: str,
        policy: Policy,
        page_size: int = 200,
        rate: float | None = None,
        interval: float = 30.0,
        dry_run: bool = False,
        sample: int = SAMPLE,
        registry: Registry | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(connection, (Redis, str)):
            raise TypeError(
                f"connection must be a redis.asyncio.Redis or a redis:// URL, got {connection!r}"
            )
        for name, value in (("stream", stream), ("group", group)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{name} must be a non-empty str, got {value!r}")
        if not isinstance(policy, Policy):
            raise TypeError(f"policy must be a msgdel.reaper.Policy, got {policy!r}")
        if policy.dead_letter == stream:
            raise ValueError("the dead-letter stream must not be the stream reaped")
        if not isinstance(dry_run, bool):
            raise TypeError(f"dry_run must be True or False, got {dry_run!r}")
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
        self.connection = connection
        self.stream, self.group, self.policy = stream, group, policy
        self.page_size: int = positive("page_size", page_size, integer=True)
        self.rate: float | None = positive("rate", rate, optional=True)
        self.interval: float = positive("interval", interval)
        self.sample: int = positive("sample", sample, integer=True)
        self.dry_run = dry_run
        self.registry = registry or default_registry
        self.adapter = RedisStreamAdapter(ignore_other_groups=policy.ignore_other_groups)
        self._client: Redis | None = connection if isinstance(connection, Redis) else None
        self._opened: contextlib.AbstractAsyncContextManager[Redis] | None = None

    def __repr__(self) -> str:
        return f"RedisReaper(stream={self.stream!r}, group={self.group!r}, policy={self.policy!r})"

    async def _open(self) -> None:
        if self._client is None and isinstance(self.connection, str):
            self._opened = self.adapter.connect(self.connection)
            self._client = await self._opened.__aenter__()

    async def _close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            self._client = None
            await opened.__aexit__(None, None, None)

    async def _run(self) -> None:
        while True:
            self._reported(await self.sweep())
            await asyncio.sleep(self.interval)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[Redis]:
        if self._client is not None:
            yield self._client
            return
        async with self.adapter.connect(str(self.connection)) as client:
            yield client

    async def sweep(self, *, progress: Callable[[int], None] | None = None) -> SweepReport:
        """Reap every entry dead now, once through the pending list; a report of what was found
        and done. A failure stops the sweep and is in the report (`complete=False`,
        `error`), never raised: what was reaped before it stays reaped, the rest pending.
        `progress` is called after each page with the number of pending entries it held."""
        tally = Tally(self.stream, self.group, self.dry_run, self.sample)
        try:
            async with self._connected() as client:
                await self._sweep(client, tally, progress)
        except MsgdelError as exc:
            tally.stop(exc)
        except redis_errors.RedisError as exc:
            tally.stop(_failure(exc))
        return tally.report()

    async def pending(self) -> int:
        """How many entries the group has pending now (dead or not): `XPENDING`'s summary."""
        async with self._connected() as client:
            try:
                summary = await client.xpending(self.stream, self.group)
            except redis_errors.ResponseError as exc:
                raise self._no_group() if "NOGROUP" in str(exc) else _failure(exc) from None
            except redis_errors.RedisError as exc:
                raise _failure(exc) from None
        return int(summary["pending"])

    def _no_group(self) -> NotDeletable:
        return NotDeletable(
            f"Redis has no stream {self.stream!r} with a consumer group {self.group!r}; "
            "nothing was reaped"
        )

    async def _sweep(
        self, client: Redis, tally: Tally, progress: Callable[[int], None] | None
    ) -> None:
        modern = await server_version(client) >= XACKDEL_VERSION
        policy, pace = self.policy, Pace(self.rate)
        idle = policy._idle_ms if policy.min_deliveries is None else None
        start = "-"
        while True:
            try:
                page = await client.xpending_range(
                    self.stream, self.group, start, "+", self.page_size, idle=idle
                )
            except redis_errors.ResponseError as exc:
                if "NOGROUP" in str(exc):
                    raise self._no_group() from None
                raise
            if not page:
                return
            tally.scanned += len(page)
            start = "(" + _text(page[-1]["message_id"])
            dead = [
                _text(p["message_id"])
                for p in page
                if policy.is_dead(int(p["times_delivered"]), int(p["time_since_delivered"]))
            ]
            tally.dead += len(dead)
            if dead:
                if self.dry_run:
                    await self._dry(client, dead, tally)
                elif policy.dead_letter is None:
                    await self._delete(client, dead, tally)
                else:
                    await self._copy(client, dead, tally, modern)
            if progress is not None:
                progress(len(page))
            if tally.error is not None:
                return
            await pace.wait(len(dead))
            if len(page) < self.page_size:
                return

    def _addresses(self, ids: list[str]) -> list[RedisEntry]:
        return [RedisEntry(self.stream, i, group=self.group) for i in ids]

    def _args(self) -> list[Any]:
        policy = self.policy
        return [self.group, policy.min_deliveries or 0, policy._idle_ms]

    async def _dry(self, client: Redis, ids: list[str], tally: Tally) -> None:
        for outcome in await msgdel.delete_at(
            client, self._addresses(ids), adapter=self.adapter, dry_run=True,
            registry=self.registry, return_exceptions=True,
        ):  # fmt: skip
            tally.add(outcome)

    async def _delete(self, client: Redis, ids: list[str], tally: Tally) -> None:
        began = time.perf_counter()
        try:
            codes = await _script(client, _TRIAGE, [self.stream], [*self._args(), *ids])
        except redis_errors.RedisError as exc:
            self._failed(ids, _failure(exc), tally, began)
            return
        live = [i for i, code in zip(ids, codes) if int(code) == 1]
        gone = [i for i, code in zip(ids, codes) if int(code) == -1]
        tally.released += len(ids) - len(live) - len(gone)
        if gone:
            self._report([self._gone(i) for i in gone], gone, tally, began)
        if live:
            outcomes = await msgdel.delete_at(
                client, self._addresses(live), adapter=self.adapter, registry=self.registry,
                return_exceptions=True,
            )  # fmt: skip
            for outcome in outcomes:
                tally.add(outcome)
            errors = [o for o in outcomes if isinstance(o, MsgdelError)]
            if errors:
                tally.stop(errors[0])

    async def _copy(self, client: Redis, ids: list[str], tally: Tally, modern: bool) -> None:
        began = time.perf_counter()
        policy = "DELREF" if self.policy.ignore_other_groups else "ACKED"
        keys = [self.stream, self.policy.dead_letter]
        try:
            reply = await _script(
                client, _COPY_THEN_DELETE, keys, [*self._args(), policy, int(modern), *ids]
            )
        except redis_errors.RedisError as exc:
            self._failed(ids, _failure(exc), tally, began)
            return
        outcomes: list[DeleteResult | MsgdelError] = []
        reaped: list[str] = []
        for entry_id, code in zip(ids, map(int, reply[::2])):
            if code == 0:
                tally.released += 1
                continue
            reaped.append(entry_id)
            if code == -1:
                outcomes.append(self._gone(entry_id))
                continue
            tally.dead_lettered += 1
            outcome = Outcome.DELETED if code == 1 else Outcome.DEFERRED
            outcomes.append(
                DeleteResult(
                    "redis", self.stream, (entry_id,), Semantics.EXACT, outcome, int(code == 1)
                )
            )
        self._report(outcomes, reaped, tally, began)

    def _gone(self, entry_id: str) -> DeleteResult:
        return DeleteResult(
            "redis", self.stream, (entry_id,), Semantics.EXACT, Outcome.ALREADY_GONE, 0
        )

    def _failed(self, ids: list[str], error: MsgdelError, tally: Tally, began: float) -> None:
        self._report([error] * len(ids), ids, tally, began)
        tally.stop(error)

    def _report(
        self,
        outcomes: list[DeleteResult | MsgdelError],
        ids: list[str],
        tally: Tally,
        began: float,
    ) -> None:
        """Count `outcomes` (of the entries `ids`), and report them to the registry's observers
        as the adapter's `delete_at` of those entries."""
        for outcome in outcomes:
            tally.add(outcome)
        if self.registry.observers and outcomes:
            self.registry.report(
                DeletionReport(
                    "delete_at", self.adapter, self.adapter.features,
                    tuple(self._addresses(ids)), tuple(outcomes), time.perf_counter() - began,
                )
            )  # fmt: skip


_loaded: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


async def _script(client: Redis, script: str, keys: list[Any], args: list[Any]) -> Any:
    """Run `script` (by its SHA-1, loaded on first use and again when the server lost it)."""
    scripts = _loaded.setdefault(client, {})
    registered = scripts.get(script)
    if registered is None:
        registered = scripts[script] = client.register_script(script)
    return await registered(keys=keys, args=args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _failure(exc: redis_errors.RedisError) -> DeletionFailed:
    """What a redis-py error means for the page it interrupted."""
    if isinstance(exc, (redis_errors.ConnectionError, redis_errors.TimeoutError)):
        return DeletionFailed(
            f"Redis could not be reached ({redact(str(exc))}); each entry of the page is still "
            "pending or was reaped (never both, never neither): sweeping again is safe",
            retryable=True,
            cause=exc,
        )
    text = redact(str(exc))
    return DeletionFailed(f"Redis refused the reaping: {text}", retryable=False, cause=exc)
