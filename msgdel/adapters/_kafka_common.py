"""What the aiokafka and confluent-kafka adapters share: deletion planning and results.

Kafka cannot delete one record. `truncate` moves a partition's log start past the message
(DeleteRecords, semantics PREFIX) and never further than the message's own offset + 1;
`tombstone` writes a null value under the message's key (semantics TOMBSTONE). This module
decides *what* to ask for and turns the broker's answers into results; a `Backend`
(one per client library) does the I/O. It imports neither client.

A consumed message and a [`KafkaOffset`][msgdel.address.KafkaOffset] address both become
`Record`s on a `Backend` first, and then go through the same planning, requests and results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote

import attrs

from msgdel import _check
from msgdel.address import KafkaOffset
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion, redact
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

logger = logging.getLogger("msgdel.kafka")

Strategy = Literal["truncate", "tombstone"]
TP = tuple[str, int]
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Work = list[tuple[int, "list[Record]"]]
"""The messages of one backend: each message's index in the batch and its records."""
Outcomes = list[tuple[int, "DeleteResult | MsgdelError"]]
Floor = dict[TP, tuple[int, str]]
"""Per partition, the lowest offset another consumer group committed, and that group."""

RETRY_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Backoff between attempts of a retriable request (leader moved, broker restarting); the last
delay repeats until the call's deadline."""


@attrs.frozen
class Record:
    """Where one consumed Kafka record lives, and its key (for tombstones)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None

    @property
    def tp(self) -> TP:
        return (self.topic, self.partition)


class Backend(Protocol):
    """The I/O one client library performs for the adapter, bound to one consumer."""

    group_id: str | None
    """The consumer group that read the messages (its position counts as consumed)."""

    async def log_starts(self, tps: Sequence[TP]) -> dict[TP, int]:
        """Each partition's current log start offset (low watermark)."""

    async def delete_records(
        self, points: dict[TP, int], since: float
    ) -> dict[TP, int | MsgdelError]:
        """DeleteRecords before `points[tp]`, one request per leader: each partition's new
        low watermark, or the error its leader answered for that partition alone. Partition
        leaders learnt after `since` (the event-loop time the call began) may route it.

        Raises (msgdel errors) only when nothing can have been deleted; a retriable failure,
        raised or per partition, is `DeletionFailed(retryable=True)`.
        """

    @property
    def group_reads(self) -> GroupReads:
        """The cluster's reads of its consumer groups' offsets (one per cluster, shared by
        its backends)."""

    async def list_groups(self) -> list[str]:
        """Every consumer group the cluster knows now: one ListGroups to each of its brokers."""

    async def committed(self, groups: Sequence[str], tps: Sequence[TP]) -> dict[str, dict[TP, int]]:
        """The offset each of `groups` has committed on each partition, read now.

        A partition on which a group committed nothing is absent from its answer; a group
        that does not exist committed nothing. Raises (msgdel errors) unless every group's
        offsets were read.
        """

    async def cleanup_policy(self, topic: str) -> str:
        """The topic's `cleanup.policy` (for example `delete` or `compact,delete`)."""

    async def produce_tombstones(self, records: Sequence[Record]) -> list[MsgdelError | None]:
        """Write a null value under each record's key to its partition, and wait for the acks:
        one entry per record, `None` when acknowledged, else the error of that record alone.

        Raises (msgdel errors) only when nothing can have been sent (no producer).
        """


class AddressBackend(Backend, Protocol):
    """A `Backend` that also checks addresses against the cluster (for `delete_at`)."""

    async def partitions(self, topics: Sequence[str]) -> dict[str, frozenset[int] | None]:
        """Each topic's partitions, `None` for a topic the cluster does not have; asking
        never creates a topic."""

    async def log_ends(self, tps: Sequence[TP]) -> dict[TP, int]:
        """Each partition's high watermark: the offset the next record will get."""


_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_URL_FORM = (
    "kafka://[user:password@]host:port[,host:port...][?security_protocol=...&sasl_mechanism=...]"
)


@attrs.frozen(repr=False)
class KafkaUrl:
    """A `kafka://` URL's brokers and credentials, for either client.

    The brokers are `host:port` (port 9092 where none is given; an IPv6 address in
    brackets). User-info means SASL: `security_protocol` defaults to `SASL_PLAINTEXT` with
    it (else `PLAINTEXT`), `sasl_mechanism` to `PLAIN`; both may be given as query options.
    """

    servers: tuple[str, ...]
    protocol: str
    username: str | None = None
    password: str | None = None
    mechanism: str = "PLAIN"

    def __repr__(self) -> str:  # never the password
        return f"KafkaUrl(servers={self.servers!r}, protocol={self.protocol!r})"

    @classmethod
    def parse(cls, url: str) -> KafkaUrl:
        """`url` parsed; a `ValueError` naming what is wrong (never the password)."""
        if not isinstance(url, str):
            raise TypeError(f"a Kafka URL is a str like {_URL_FORM!r}, got {url!r}")
        shown = redact(url)

        def bad(what: str) -> ValueError:
            return ValueError(redact(f"{what} in the Kafka URL {shown!r}; write it as {_URL_FORM}"))

        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() != "kafka":
            raise bad("the scheme is not kafka://")
        rest, _, fragment = rest.partition("#")
        rest, _, query = rest.partition("?")
        userinfo, at, rest = rest.rpartition("@")
        hosts, _, path = rest.partition("/")
        if path or fragment:
            raise bad("a Kafka URL names brokers only, but there is a path or fragment")
        servers = tuple(_server(h.strip(), bad) for h in hosts.split(",")) if hosts else ()
        if not servers:
            raise bad("no broker is named")
        options: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            allowed = {"security_protocol": _PROTOCOLS, "sasl_mechanism": _MECHANISMS}.get(key)
            if allowed is None:
                raise bad(
                    f"the option {key!r} is unknown (known: security_protocol, sasl_mechanism)"
                )
            if value.upper() not in allowed:
                raise bad(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
            options[key] = value.upper()
        protocol = options.get("security_protocol", "SASL_PLAINTEXT" if at else "PLAINTEXT")
        if not at:
            if protocol.startswith("SASL_"):
                raise bad(f"security_protocol {protocol} needs user:password@ before the brokers")
            return cls(servers, protocol)
        user, _, password = userinfo.partition(":")
        if not user:
            raise bad("there are credentials but no user name")
        if not protocol.startswith("SASL_"):
            raise bad(
                f"credentials need security_protocol SASL_PLAINTEXT or SASL_SSL, not {protocol}"
            )
        mechanism = options.get("sasl_mechanism", "PLAIN")
        return cls(servers, protocol, unquote(user), unquote(password), mechanism)


def _server(host: str, bad: Callable[[str], ValueError]) -> str:
    """`host` as `host:port`, 9092 by default; an IPv6 address is written in brackets."""
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if not colon:
        name, port = host, "9092"
    if not name or (":" in name and not name.startswith("[")):
        raise bad(f"the broker {host!r} is not host:port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise bad(f"the broker {host!r} has no valid port")
    return f"{name}:{port}"


RECENT = 30.0
"""Seconds for which a partition a call asked for is among those a group read fetches early."""

YIELD_EVERY = 32
"""Messages a batch prepares between two turns of the event loop, which gives the requests
already started (the other groups' offsets) their turn to be sent and answered."""

DEFAULT_TIMEOUT = 15.0
"""Seconds one `delete`/`delete_many` waits for the cluster, retries included."""


@attrs.frozen
class Deadline:
    """The event-loop time by which one deletion call must be answered."""

    at: float
    timeout: float

    @classmethod
    def after(cls, timeout: float) -> Deadline:
        return cls(asyncio.get_running_loop().time() + timeout, timeout)

    @property
    def began(self) -> float:
        """The event-loop time the call began."""
        return self.at - self.timeout

    def remaining(self) -> float:
        return self.at - asyncio.get_running_loop().time()


def _timed_out(deadline: Deadline, exc: BaseException) -> DeletionFailed:
    return DeletionFailed(
        f"Kafka did not answer within {deadline.timeout:g}s; retrying can succeed once "
        "the cluster is reachable (a slow cluster needs a larger adapter timeout=)",
        retryable=True,
        cause=exc,
    )


def unreachable(shown: str, timeout: float, exc: BaseException) -> DeletionFailed:
    """What a cluster that `connect(url)` could not reach (at `shown`, the URL without its
    password) means: nothing was sent, retrying is safe."""
    reason = (
        f"no answer within {timeout:g}s"
        if isinstance(exc, asyncio.TimeoutError)
        else f"{type(exc).__name__}: {exc}"
    )
    return DeletionFailed(
        f"could not connect to Kafka at {shown} ({reason}); nothing was sent, and retrying is safe",
        retryable=True,
        cause=exc,
    )


async def with_retries(call: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
    """Run `call`, retrying `DeletionFailed(retryable=True)` with backoff until `deadline`.

    Every attempt and pause ends by `deadline`: a request still unanswered then is cancelled
    and `DeletionFailed(retryable=True)` raised, so an unreachable cluster fails in bounded
    time instead of waiting for the client's own (much longer) request timeout. A retriable
    failure is retried while a pause still fits before the deadline, then raised as it is
    (also when the pause overran the deadline: the last answer says more than a timeout).
    """
    attempt = 0
    last: DeletionFailed | None = None
    while True:
        remaining = deadline.remaining()
        if remaining <= 0 and last is not None:
            raise last
        try:
            if remaining <= 0:
                raise asyncio.TimeoutError
            return await asyncio.wait_for(call(), remaining)
        except asyncio.TimeoutError as exc:
            raise _timed_out(deadline, exc) from exc
        except DeletionFailed as exc:
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)]
            attempt += 1
            if not exc.retryable or delay >= deadline.remaining():
                raise
            last = exc
            logger.debug("retrying a Kafka request in %.2fs: %s", delay, exc)
            await asyncio.sleep(delay)


async def settle_each(
    call: Callable[[list[K]], Awaitable[dict[K, V | MsgdelError]]],
    keys: Sequence[K],
    deadline: Deadline,
) -> dict[K, V | MsgdelError]:
    """An answer for every key: `call` on the keys not settled yet, retried (through
    `with_retries`) while some answer is `DeletionFailed(retryable=True)`.

    A key keeps the first answer that is a value or an error a retry cannot cure; the keys
    still retriable at the deadline (or when `call` itself fails for good) get that error.
    """
    settled: dict[K, V | MsgdelError] = {}
    pending = list(keys)

    async def attempt() -> None:
        nonlocal pending
        got = await call(list(pending))
        retry: DeletionFailed | None = None
        left: list[K] = []
        for key in pending:
            answer = got[key]
            if isinstance(answer, DeletionFailed) and answer.retryable:
                retry = retry or answer
                left.append(key)
            else:
                settled[key] = answer
        pending = left
        if retry is not None:
            raise retry

    if pending:
        try:
            await with_retries(attempt, deadline)
        except MsgdelError as exc:
            settled.update(dict.fromkeys(pending, exc))
    return settled


async def gather_all(*calls: Awaitable[Any]) -> list[Any]:
    """Await every call concurrently; when one fails, cancel the others and raise its error."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@attrs.frozen
class Listing:
    """What one read of a cluster's consumer groups found."""

    groups: frozenset[str]
    """Every group the cluster listed."""
    offsets: dict[str, dict[TP, int]]
    """The offsets read with the listing: for each group listed on the read before, its
    commits on `partitions` (a partition it committed nothing on is absent)."""
    partitions: frozenset[TP]


@attrs.define
class _Read:
    """One read of the groups, and the deadline of the calls that joined it."""

    backend: Backend
    deadline: Deadline
    done: asyncio.Future[Listing]


class GroupReads:
    """Reads a cluster's consumer groups and their committed offsets for the calls on it.

    A call joins a read as it begins (`join`) and never gets offsets read before that:
    it joins the next read to start, never one in flight. One read runs at a time per
    cluster; the calls that arrive meanwhile (a Batcher's concurrent flushes) share the next.
    A read lists the groups (ListGroups) and, in flight together, fetches the offsets of the
    groups the previous listing returned on the partitions calls asked for lately (an
    offset read a moment earlier is never higher: committed offsets only move forward). Each
    call then fetches what the read left out (`floor`): the groups the listing added,
    and its partitions the read did not cover. A group created after its broker answered the
    ListGroups is not seen: the same race as a group created just after the DeleteRecords.
    """

    def __init__(self) -> None:
        self.seen: frozenset[str] = frozenset()
        """The groups the latest listing returned (empty before the first)."""
        self.partitions: frozenset[TP] = frozenset()
        """The partitions the latest read fetched offsets on."""
        self._asked: dict[TP, float] = {}
        """When a call last asked for each partition (event-loop time)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: asyncio.Task[None] | None = None
        self._next: _Read | None = None

    def join(self, backend: Backend, deadline: Deadline) -> asyncio.Future[Listing]:
        """Join the next read to start (now, when none is in flight), for `floor`."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop: nothing carries over
            self._loop, self._running, self._next = loop, None, None
        read = self._next
        if read is None:
            read = self._next = _Read(backend, deadline, loop.create_future())
            read.done.add_done_callback(_retrieve)
        if deadline.at > read.deadline.at:
            read.deadline = deadline
        if self._running is None:
            self._start()
        return read.done

    async def floor(
        self,
        joined: asyncio.Future[Listing],
        backend: Backend,
        tps: Sequence[TP],
        deadline: Deadline,
    ) -> Floor:
        """The lowest offset committed on each of `tps` by any group the joined read listed
        but the backend's own, and that group (the first by name on a tie); partitions no
        such group committed on are absent."""
        self._asked.update(dict.fromkeys(tps, asyncio.get_running_loop().time()))
        try:
            listing = await asyncio.wait_for(asyncio.shield(joined), deadline.remaining())
        except asyncio.TimeoutError as exc:
            raise _timed_out(deadline, exc) from exc
        offsets = {group: dict(committed) for group, committed in listing.offsets.items()}
        new = [g for g in sorted(listing.groups) if g not in offsets]
        uncovered = [tp for tp in tps if tp not in listing.partitions]
        fetches = []
        if new:
            fetches.append(with_retries(lambda: backend.committed(new, tps), deadline))
        if uncovered and offsets:
            old = list(offsets)
            fetches.append(with_retries(lambda: backend.committed(old, uncovered), deadline))
        for fetched in await gather_all(*fetches):
            for group, committed in fetched.items():
                offsets.setdefault(group, {}).update(committed)
        floor: Floor = {}
        for group, committed in offsets.items():
            if group == backend.group_id:
                continue
            for tp in tps:
                offset = committed.get(tp)
                if offset is not None and (tp not in floor or (offset, group) < floor[tp]):
                    floor[tp] = (offset, group)
        return floor

    def _start(self) -> None:
        read, self._next = self._next, None
        if read is not None:
            self._running = asyncio.get_running_loop().create_task(self._run(read))

    async def _run(self, read: _Read) -> None:
        try:
            read.done.set_result(await self._read(read.backend, read.deadline))
        except Exception as exc:
            read.done.set_exception(exc)
        except BaseException:  # cancelled (the event loop is closing): fail its calls
            read.done.set_exception(
                DeletionFailed("reading the consumer groups was cancelled", retryable=True)
            )
            raise
        finally:
            self._running = None
            self._start()

    async def _read(self, backend: Backend, deadline: Deadline) -> Listing:
        seen = sorted(self.seen)
        recent = asyncio.get_running_loop().time() - RECENT
        self._asked = {tp: at for tp, at in self._asked.items() if at >= recent}
        tps = sorted(self._asked)
        listing = with_retries(backend.list_groups, deadline)
        if seen and tps:
            early = with_retries(lambda: backend.committed(seen, tps), deadline)
            listed, offsets = await gather_all(listing, early)
        else:
            listed, offsets, tps = await listing, {}, []
        self.seen, self.partitions = frozenset(listed), frozenset(tps)
        return Listing(self.seen, offsets, self.partitions)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared read's error as seen, also when every call waiting for it has gone."""
    if not future.cancelled():
        future.exception()


def target_of(records: Sequence[Record]) -> str:
    """`topic[partition]` for each partition the records sit on, comma-separated."""
    if len(records) == 1:
        return f"{records[0].topic}[{records[0].partition}]"
    seen = dict.fromkeys(r.tp for r in records)
    return ",".join(f"{topic}[{partition}]" for topic, partition in seen)


@attrs.frozen
class Truncation:
    """What deleting some offsets of one partition would truncate now (`preview`)."""

    topic: str
    partition: int
    log_start: int
    """The partition's log start offset now."""
    up_to: int
    """The log start offset the deletion would set, after the group cap (at least
    `log_start`)."""
    records: int
    """How many records it would remove: `up_to - log_start`."""
    held_by: str | None
    """A consumer group whose committed offset caps the deletion, if one does."""


@attrs.frozen
class Plan:
    """What a truncation asks for, partition by partition: the message path's and the
    address path's, and what `preview` shows."""

    wanted: dict[TP, int]
    """The highest offset + 1 asked for, in first-seen order."""
    points: dict[TP, int]
    """The deletion points, capped by the other groups' commits."""
    starts: dict[TP, int]
    """The log start offsets before."""
    held_by: dict[TP, str]
    """The group that capped each capped point."""


Prepared = tuple["list[Record]", "Backend | None"]
"""A message or an address made ready to delete: its records and the backend they live on
(`None`: an in-memory test broker's message, skipped)."""


class KafkaFamilyAdapter(BaseAdapter):
    """The delete logic of both Kafka adapters; subclasses bind messages (and connections,
    for addresses) to a `Backend`.

    `strategy="truncate"` (semantics PREFIX) or `"tombstone"` (semantics TOMBSTONE);
    by default (`protect_groups=True`) it never truncates past an offset another consumer
    group of the cluster has not committed yet (outcome `DEFERRED` when that caps the
    deletion; the group that commits last truncates); `protect_groups=False` truncates for
    every group at once. `timeout` bounds, in
    seconds, how long one `delete`/`delete_many` waits for the cluster, retries included;
    past it the call raises `DeletionFailed(retryable=True)`.
    """

    broker = "kafka"
    by_address = False
    """Whether the subclass deletes [`KafkaOffset`][msgdel.address.KafkaOffset] addresses."""
    read_turns: int | None = None
    """How many turns of the event loop preparing a batch gives the group reads it started
    (one every `YIELD_EVERY` messages); `None`: all through the batch. A client whose reads
    are all sent within a few turns needs no more: later turns would only read answers the
    call uses once the batch is prepared anyway, one loop iteration each."""

    def __init__(
        self,
        strategy: Strategy = "truncate",
        *,
        protect_groups: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if strategy not in ("truncate", "tombstone"):
            raise ValueError(f"strategy must be 'truncate' or 'tombstone', not {strategy!r}")
        self.strategy = strategy
        self.protect_groups = _check.flag("protect_groups", protect_groups)
        self.timeout = _check.seconds("timeout", timeout, positive=True)
        semantics = Semantics.PREFIX if strategy == "truncate" else Semantics.TOMBSTONE
        # Tombstoning again writes another null value, which Kafka also removes only later.
        repeat = Outcome.ALREADY_GONE if strategy == "truncate" else Outcome.DEFERRED
        self.features = Features(
            self.broker, semantics, closes=True, repeat=repeat, by_address=self.by_address
        )
        self._policies: dict[str, str] = {}
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(strategy={self.strategy!r}, "
            f"protect_groups={self.protect_groups}, timeout={self.timeout:g})"
        )

    # -- what subclasses provide -----------------------------------------------------------
    def records(self, message: Any) -> list[Record]:
        """The records of a single or batch message; `NotDeletable` when there are none."""
        raise NotImplementedError

    def backend(self, message: Any) -> Backend | None:
        """The backend bound to the message's consumer; `None` for an in-memory test broker."""
        raise NotImplementedError

    def address_backend(self, connection: Any) -> AddressBackend:
        """The backend of a client `connect` gave (or the caller passed), reading offsets
        for no consumer group of its own; `UnsupportedDeletion` for anything else."""
        raise UnsupportedDeletion(f"{self!r} does not delete by address")

    # -- the Deletable protocol ------------------------------------------------------------
    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Delete every message; one result or error per message, in input order.

        `truncate`: one deletion point per partition (the highest offset + 1 among the
        messages), one DeleteRecords request per partition leader. `tombstone`: every
        keyed record gets a tombstone. A message that cannot be addressed (no records, no
        key for a tombstone, no cluster) fails alone; a partition, leader or cluster that
        fails fails only the messages it holds.
        """
        return await self._delete(messages, self._prepare, Deadline.after(self.timeout))

    def _prepare(self, message: Any) -> Prepared:
        records = self.records(message)
        backend = self.backend(message)
        if backend is not None and self.strategy == "tombstone":
            _require_keys(records)
        return records, backend

    # -- the AddressDeletable protocol -----------------------------------------------------
    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[DeleteResult | MsgdelError]:
        """Delete [`KafkaOffset`][msgdel.address.KafkaOffset]s on `connection` (see
        `address_backend`): one result or error per address, in input order, as
        `delete_many` deletes messages at those offsets, every consumer group counting as
        another one.

        Before anything is sent each address is checked against the cluster: an unknown
        topic or partition, or an offset at or past the partition's high watermark (no such
        record yet), fails alone with `NotDeletable` naming it, and nothing is truncated for
        it. Only `strategy="truncate"` deletes addresses (a tombstone needs the record's key).
        """
        self._check_truncates()
        backend = self.address_backend(connection)
        deadline = Deadline.after(self.timeout)
        located = await self._locate(backend, addresses, deadline)

        def prepare(item: Record | MsgdelError) -> Prepared:
            if isinstance(item, MsgdelError):
                raise item
            return [item], backend

        return await self._delete(located, prepare, deadline)

    async def preview(self, connection: Any, addresses: Iterable[Any]) -> list[Truncation]:
        """What `delete_at(connection, addresses)` would truncate now, one `Truncation` per
        partition in first-seen order, read with the same requests but `DeleteRecords`:
        nothing is deleted. `connection` is what `delete_at` takes, or a `kafka://` URL
        (connected for the call).

        Addresses `delete_at` would refuse (unknown topic or partition, an offset past the
        high watermark) truncate nothing and are left out; the cluster's failures raise.
        """
        items = list(addresses)
        if isinstance(connection, str):
            async with self.connect(connection) as client:
                return await self.preview(client, items)
        self._check_truncates()
        backend = self.address_backend(connection)
        deadline = Deadline.after(self.timeout)
        located = await self._locate(backend, items, deadline)
        work: Work = [(i, [r]) for i, r in enumerate(located) if isinstance(r, Record)]
        if not work:
            return []
        joined = backend.group_reads.join(backend, deadline) if self.protect_groups else None
        plan = await self._plan(backend, work, deadline, joined)
        truncations = []
        for (topic, partition), _ in plan.wanted.items():
            start = plan.starts[topic, partition]
            up_to = max(start, plan.points[topic, partition])
            held_by = plan.held_by.get((topic, partition))
            truncations.append(Truncation(topic, partition, start, up_to, up_to - start, held_by))
        return truncations

    def _check_truncates(self) -> None:
        if self.strategy != "truncate":
            raise UnsupportedDeletion(
                f"{self!r} cannot delete by address: a KafkaOffset names an offset, not the "
                "key a tombstone needs; nothing was sent. Use strategy='truncate' (the "
                "default, semantics PREFIX)"
            )

    async def _locate(
        self, backend: AddressBackend, addresses: Sequence[Any], deadline: Deadline
    ) -> list[Record | MsgdelError]:
        """Each address as its `Record`, or the `NotDeletable` that says why the cluster
        has no such record; the cluster is asked, nothing is changed."""
        offsets = [a for a in addresses if isinstance(a, KafkaOffset)]
        topics = sorted({a.topic for a in offsets})
        known = await with_retries(lambda: backend.partitions(topics), deadline) if topics else {}
        tps = sorted({(a.topic, a.partition) for a in offsets
                      if a.partition in (known.get(a.topic) or ())})  # fmt: skip
        ends = await with_retries(lambda: backend.log_ends(tps), deadline) if tps else {}
        located: list[Record | MsgdelError] = []
        for a in addresses:
            if not isinstance(a, KafkaOffset):
                located.append(
                    NotDeletable(
                        f"{a!r} is not a msgdel.address.KafkaOffset: {type(self).__name__} "
                        "deletes Kafka offsets only; nothing was sent for it"
                    )
                )
                continue
            partitions = known.get(a.topic)
            end = ends.get((a.topic, a.partition))
            if partitions is None:
                error = f"Kafka has no topic {a.topic!r}"
            elif end is None:
                error = (
                    f"topic {a.topic!r} has no partition {a.partition} (it has {len(partitions)})"
                )
            elif a.offset >= end:
                error = (
                    f"{a.topic}[{a.partition}] has no record at offset {a.offset} yet: its high "
                    f"watermark (the offset the next record gets) is {end}"
                )
            else:
                located.append(Record(a.topic, a.partition, a.offset, None))
                continue
            located.append(NotDeletable(f"{error}; nothing was truncated for {a}"))
        return located

    # -- one implementation for messages and addresses -------------------------------------
    async def _delete(
        self,
        items: Sequence[T],
        prepare: Callable[[T], Prepared],
        deadline: Deadline,
    ) -> list[DeleteResult | MsgdelError]:
        """Delete what `prepare` makes of each item: one result or error per item, in
        order; an item `prepare` refuses (a msgdel error) fails alone."""
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(items)
        groups: dict[int, tuple[Backend, Work]] = {}
        reads: dict[int, asyncio.Future[Listing]] = {}
        protect = self.protect_groups and self.strategy == "truncate"
        turns = 0
        for index, item in enumerate(items):
            if reads and index % YIELD_EVERY == 1 and turns != self.read_turns:
                turns += 1
                await asyncio.sleep(0)  # the group reads started below send and read meanwhile
            try:
                records, backend = prepare(item)
            except MsgdelError as exc:
                outcomes[index] = exc
                continue
            if backend is None:
                outcomes[index] = self._result(records, Outcome.SKIPPED, 0)
                continue
            key = id(backend)
            if key not in groups:
                groups[key] = (backend, [])
                if protect:  # read the other groups while the rest of the batch is prepared
                    reads[key] = backend.group_reads.join(backend, deadline)
            groups[key][1].append((index, records))
        done: list[Outcomes | BaseException]
        if len(groups) == 1:  # awaited here: a task would cost a turn of the event loop
            ((key, (backend, work)),) = groups.items()
            done = [await self._settle(backend, work, deadline, reads.get(key))]
        else:
            done = await asyncio.gather(
                *(
                    self._settle(backend, work, deadline, reads.get(key))
                    for key, (backend, work) in groups.items()
                ),
                return_exceptions=True,
            )
        for answer in done:
            if isinstance(answer, BaseException):
                raise answer  # not a msgdel error: a bug, reported for the whole batch
            for index, outcome in answer:
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    async def _settle(
        self,
        backend: Backend,
        work: Work,
        deadline: Deadline,
        joined: asyncio.Future[Listing] | None,
    ) -> Outcomes:
        """The outcomes of one backend's messages; its failure is theirs alone."""
        try:
            if self.strategy == "truncate":
                return await self._truncate(backend, work, deadline, joined)
            return await self._tombstone(backend, work, deadline)
        except MsgdelError as exc:
            return [(index, exc) for index, _ in work]

    # -- truncate ---------------------------------------------------------------------------
    async def _plan(
        self,
        backend: Backend,
        work: Work,
        deadline: Deadline,
        joined: asyncio.Future[Listing] | None,
    ) -> Plan:
        """The deletion point of each partition, capped by the other groups' commits when a
        group read was joined, and the log starts: read, nothing deleted."""
        wanted: dict[TP, int] = {}
        for _, records in work:
            for r in records:
                wanted[r.tp] = max(wanted.get(r.tp, 0), r.offset + 1)
        tps = list(wanted)
        points = dict(wanted)
        held_by: dict[TP, str] = {}
        starts = with_retries(lambda: backend.log_starts(tps), deadline)
        if joined is not None:  # both reads in flight together
            # The log starts are awaited here, the floor in a task: the ListOffsets then leaves
            # before the loop reads the group read's answers, which it reads meanwhile.
            reads = backend.group_reads
            capping = asyncio.ensure_future(reads.floor(joined, backend, tps, deadline))
            try:
                old = await starts
                floor = await capping
            except BaseException:
                capping.cancel()
                await asyncio.gather(capping, return_exceptions=True)
                raise
            for tp, (committed, group) in floor.items():
                if committed < points[tp]:
                    points[tp], held_by[tp] = committed, group
        else:
            old = await starts
        return Plan(wanted, points, old, held_by)

    async def _truncate(
        self,
        backend: Backend,
        work: Work,
        deadline: Deadline,
        joined: asyncio.Future[Listing] | None,
    ) -> Outcomes:
        plan = await self._plan(backend, work, deadline, joined)
        wanted, old = plan.wanted, plan.starts
        send = {tp: point for tp, point in plan.points.items() if point > old[tp]}
        answers = await settle_each(
            lambda part: backend.delete_records({tp: send[tp] for tp in part}, deadline.began),
            list(send),
            deadline,
        )
        new = dict(old)
        failed: dict[TP, MsgdelError] = {}
        for tp, answer in answers.items():
            if isinstance(answer, MsgdelError):
                failed[tp] = answer
            else:
                new[tp] = answer

        # A partition's removed count goes to the (first) message that set its deletion point.
        owner: dict[TP, int] = {}
        for index, records in work:
            for r in records:
                if r.offset + 1 == wanted[r.tp]:
                    owner.setdefault(r.tp, index)
        done: Outcomes = []
        for index, records in work:
            error = next((failed[r.tp] for r in records if r.tp in failed), None)
            if error is not None:
                done.append((index, error))
                continue
            if all(r.offset < old[r.tp] for r in records):
                outcome = Outcome.ALREADY_GONE
            elif any(r.offset >= new[r.tp] for r in records):
                outcome = Outcome.DEFERRED
            else:
                outcome = Outcome.DELETED
            removed = 0
            for tp in {r.tp for r in records}:
                if owner.get(tp) == index:
                    removed += max(new[tp] - old[tp], 0)
            if outcome is Outcome.DEFERRED:
                logger.info(
                    "kafka truncation of %s capped by committed group offsets at %s",
                    target_of(records),
                    {f"{t}[{p}]": new[t, p] for t, p in {r.tp for r in records}},
                )
            done.append((index, self._result(records, outcome, removed)))
        return done

    # -- tombstone --------------------------------------------------------------------------
    async def _tombstone(self, backend: Backend, work: Work, deadline: Deadline) -> Outcomes:
        unique: dict[tuple[TP, bytes | None], Record] = {}
        for _, records in work:
            for r in records:
                unique[(r.tp, r.key)] = r
        for topic in dict.fromkeys(r.topic for r in unique.values()):
            await self._warn_unless_compacted(backend, topic, deadline)

        async def produce(keys: list[tuple[TP, bytes | None]]) -> dict[Any, MsgdelError | None]:
            return dict(zip(keys, await backend.produce_tombstones([unique[k] for k in keys])))

        answers = await settle_each(produce, list(unique), deadline)
        done: Outcomes = []
        for index, records in work:
            error = next((e for r in records if (e := answers[(r.tp, r.key)]) is not None), None)
            done.append(
                (index, self._result(records, Outcome.DEFERRED, 0) if error is None else error)
            )
        return done

    async def _warn_unless_compacted(
        self, backend: Backend, topic: str, deadline: Deadline
    ) -> None:
        policy = self._policies.get(topic)
        if policy is None:
            policy = await with_retries(lambda: backend.cleanup_policy(topic), deadline)
            self._policies[topic] = policy
        if "compact" not in policy and topic not in self._warned:
            self._warned.add(topic)
            logger.warning(
                "topic %r has cleanup.policy=%s without 'compact': the tombstone was written, "
                "but Kafka will never remove the keyed records it shadows; set "
                "cleanup.policy=compact (or compact,delete), or use strategy='truncate'",
                topic,
                policy,
            )

    def _result(self, records: Sequence[Record], outcome: Outcome, removed: int) -> DeleteResult:
        return DeleteResult(
            broker=self.broker,
            target=target_of(records),
            ids=[r.offset for r in records],
            semantics=self.semantics,
            outcome=outcome,
            removed=removed,
        )


def _require_keys(records: list[Record]) -> None:
    for r in records:
        if r.key is None:
            raise NotDeletable(
                f"the record at {r.topic}[{r.partition}] offset {r.offset} has no key, so a "
                "tombstone cannot address it: nothing was sent for this message. Publish with "
                "a key, or use strategy='truncate'"
            )


def raw_records(message: Any) -> tuple[Any, ...]:
    """The client records a single or batch message holds; `NotDeletable` when it holds
    none (an empty batch, or a message no broker delivered)."""
    raw = getattr(message, "raw_message", None)
    if raw is None:
        raise NotDeletable(
            f"{type(message).__name__} holds no Kafka record (no raw_message): no broker "
            "delivered it, so there is nothing to address"
        )
    # a tuple from a real consumer; a list from FastStream's in-memory TestKafkaBroker
    batch = tuple(raw) if isinstance(raw, (tuple, list)) else (raw,)
    if not batch:
        raise NotDeletable(f"{type(message).__name__} holds no Kafka records to delete")
    return batch
