"""NATS: delete JetStream messages by stream sequence, KV keys and object-store objects.

Imports only nats-py (and FastStream's NATS message classes, through the registry).

- [`JetStreamAdapter`][msgdel.adapters.nats.JetStreamAdapter] sends
  `$JS.API.STREAM.MSG.DELETE.<stream>` with the stream sequence from the message's own metadata, on
  the connection the message arrived on. Core NATS messages were never stored: `NOT_STORED` /
  `NOTHING_STORED`, nothing is sent.
- [`KeyValueAdapter`][msgdel.adapters.nats.KeyValueAdapter] deletes (or purges) the key of a KV
  watch entry.
- [`ObjectStoreAdapter`][msgdel.adapters.nats.ObjectStoreAdapter] deletes the object of an
  object-store watch entry.

By address ([`msgdel.delete_at`][msgdel.delete_at] on a `nats://` URL or a connected nats-py
`Client`): `JetStreamAdapter` deletes a [`JetStreamSequence`][msgdel.address.JetStreamSequence]
and `KeyValueAdapter` a [`KvKey`][msgdel.address.KvKey], each turned into the same internal plan
as a consumed message and deleted by the same code.

Messages of FastStream's `TestNatsBroker` give `SKIPPED`; nothing is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.api import ObjectInfo
    from nats.js.kv import KeyValue
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("nats") from exc

from msgdel import _check
from msgdel.address import JetStreamSequence, KvKey
from msgdel.compat import handler_config, under_test_broker
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion, redact
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

if TYPE_CHECKING:
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext
    from nats.js.object_store import ObjectStore

__all__ = ["JetStreamAdapter", "KeyValueAdapter", "ObjectStoreAdapter"]

BROKER = "nats"
DEFAULT_CONCURRENCY = 100
"""Requests in flight at once in `delete_many`."""

ALREADY_DELETED_CODES = frozenset({10057, 10043})
"""JetStream error codes meaning "no such message" (which one depends on mode and version)."""
STREAM_NOT_FOUND_CODE = 10059
NO_MESSAGE_CODE = 10037
"""`STREAM.MSG.GET`: no message at that sequence."""
WRONG_LAST_SEQUENCE_CODE = 10071
_RETRYABLE_STATUS = frozenset({408, 503})

_CONNECT_OPTIONS: dict[str, Any] = {
    "connect_timeout": 2,
    "allow_reconnect": False,
    "max_reconnect_attempts": 1,
    "reconnect_time_wait": 0.1,
    "name": "msgdel",
}
"""How `connect(url)` connects: two attempts of at most 2 s each, 0.1 s apart, no reconnect
once connected (a request meeting a dropped connection fails, and can be retried)."""

_REFUSALS = ("authorization violation", "authentication expired")
"""What nats-server's `-ERR` says (nats-py raises it as a plain `nats.errors.Error` while
connecting) when it refuses the credentials."""

_opened: weakref.WeakSet[Client] = weakref.WeakSet()
"""The clients `connect(url)` opened: one that closed can be replaced by calling again."""

T = TypeVar("T")


# -- shared helpers -----------------------------------------------------------------------------
async def _bounded(
    jobs: Sequence[Callable[[], Awaitable[T]]], limit: int
) -> list[T | BaseException]:
    """Run `jobs` with at most `limit` in flight; each slot holds a result or its exception."""
    results: list[T | BaseException] = [RuntimeError("not run")] * len(jobs)
    pending = iter(range(len(jobs)))

    async def worker() -> None:
        for index in pending:
            try:
                results[index] = await jobs[index]()
            except Exception as exc:
                results[index] = exc

    await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(jobs))))))
    return results


def _as_msgdel_error(what: str, exc: BaseException) -> MsgdelError:
    """`exc` itself when it is a msgdel error, else as the matching `DeletionFailed`."""
    if isinstance(exc, MsgdelError):
        return exc
    if isinstance(exc, Exception):
        return _transport_error(what, exc)
    return DeletionFailed(f"could not {what}: {exc!r}", retryable=False, cause=exc)


def _check_connected(client: Client | None, what: str) -> None:
    """Refuse to send while `client` is reconnecting: nats-py would buffer the request and
    send it after the reconnect, long after this call timed out, so a deletion reported as
    failed would still happen later."""
    if client is not None and (client.is_reconnecting or client.is_connecting):
        raise DeletionFailed(
            f"could not {what}: the NATS connection is down and reconnecting; nothing was "
            "sent. Retry once it has reconnected.",
            retryable=True,
        )


def _skipped(target: str, ids: Sequence[object], semantics: Semantics) -> DeleteResult:
    return DeleteResult(BROKER, target, ids, semantics, Outcome.SKIPPED)


def _transport_error(what: str, exc: Exception, client: Client | None = None) -> DeletionFailed:
    """A nats-py error on the wire as a `DeletionFailed` that says whether to retry."""
    if isinstance(exc, nats.errors.ConnectionClosedError) and client in _opened:
        return DeletionFailed(
            f"could not {what}: the connection msgdel opened for this call closed (did the "
            "server go away?); whether a request in flight was carried out is unknown. "
            "Deleting again opens a new connection and is safe.",
            retryable=True,
            cause=exc,
        )
    if isinstance(exc, nats.errors.ConnectionClosedError):
        return DeletionFailed(
            f"could not {what}: the NATS connection is closed; nothing was deleted. "
            "Delete while the broker is connected.",
            retryable=False,
            cause=exc,
        )
    if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.ServiceUnavailableError):
        return DeletionFailed(
            f"could not {what}: no JetStream server answered (is JetStream enabled, and is "
            "the domain right?); nothing was deleted",
            retryable=True,
            cause=exc,
        )
    if isinstance(exc, nats.errors.TimeoutError | asyncio.TimeoutError):
        return DeletionFailed(
            f"could not {what}: JetStream did not answer in time, so whether it did is unknown; "
            "deleting again is safe (what is gone then reports ALREADY_GONE)",
            retryable=True,
            cause=exc,
        )
    return DeletionFailed(f"could not {what}: {exc!r}", retryable=False, cause=exc)


async def _quiet(error: Exception) -> None:
    """nats-py's error callback for msgdel's own connections: every error also fails the call
    that met it, so nothing is logged here."""


@contextlib.asynccontextmanager
async def _connected(url: str) -> AsyncIterator[Client]:
    """A nats-py client for `url` (credentials from the URL), connected with
    `_CONNECT_OPTIONS` and closed on exit."""
    client = Client()
    try:
        await client.connect(url, error_cb=_quiet, **_CONNECT_OPTIONS)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await client.close()
        refused = isinstance(exc, nats.errors.AuthorizationError) or any(
            words in str(exc).lower() for words in _REFUSALS
        )
        advice = (
            "the server refused the credentials; retrying with the same ones cannot succeed"
            if refused
            else "retrying is safe"
        )
        raise DeletionFailed(
            f"could not connect to NATS at {redact(url)} ({redact(repr(exc))}); nothing was "
            f"sent, {advice}",
            retryable=not refused,
            cause=exc,
        ) from exc
    _opened.add(client)
    try:
        yield client
    finally:
        await client.close()


def _nats_client(adapter: object, connection: object) -> Client:
    """`connection` when it is a nats-py `Client`; else `UnsupportedDeletion` naming it."""
    if not isinstance(connection, Client):
        kind = type(connection)
        raise UnsupportedDeletion(
            f"{adapter!r} deletes addresses on a connected nats.aio.client.Client (what "
            f"nats.connect() returns) or a nats:// URL, got {kind.__module__}.{kind.__qualname__}"
            "; nothing was sent"
        )
    return connection


def _not_mine(adapter: object, address: object, expected: type, instead: str) -> MsgdelError:
    """The error of an address `adapter` does not delete (given with `delete_at(adapter=)`)."""
    return UnsupportedDeletion(
        f"{adapter!r} deletes {expected.__name__} addresses, not {address!r}: {instead}; "
        "nothing was sent"
    )


# -- JetStream messages -------------------------------------------------------------------------
class JetStreamAdapter(BaseAdapter):
    """Deletes exactly the consumed JetStream message(s), by stream sequence.

    `erase=False` (default) sends `no_erase: true`: the message is removed from the stream
    at once, but its bytes stay in the stream's files until compaction. `erase=True`
    overwrites the bytes first (secure delete, slower). `concurrency` bounds the requests in
    flight in [`delete_many`][msgdel.adapters.nats.JetStreamAdapter.delete_many]; `timeout` is each
    request's timeout in seconds; `api_prefix` overrides the JetStream API prefix (default
    `$JS.API`, or `$JS.<domain>.API` when the message names a domain).

    By address, a [`JetStreamSequence`][msgdel.address.JetStreamSequence] is deleted with the
    same requests and results; it has no reading consumer, so every consumer of its stream
    counts as another one (`DEFERRED` until it acknowledged the sequence, unless
    `ignore_other_consumers`), and a stream that does not exist is
    [`NotDeletable`][msgdel.NotDeletable].
    """

    features = Features(BROKER, Semantics.EXACT, coalesces=False, by_address=True)
    """Bounded concurrency: JetStream deletes one sequence per request."""

    def __init__(
        self,
        *,
        erase: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout: float = 5.0,
        api_prefix: str | None = None,
        ignore_other_consumers: bool = False,
    ) -> None:
        if api_prefix is not None and (not isinstance(api_prefix, str) or not api_prefix):
            raise TypeError(
                f"api_prefix must be a JetStream API subject prefix such as '$JS.API' or None, "
                f"got {api_prefix!r}"
            )
        self.erase = _check.flag("erase", erase)
        self.concurrency = _check.at_least("concurrency", concurrency, 1)
        self.timeout = _check.seconds("timeout", timeout, positive=True)
        self.api_prefix = api_prefix
        self.ignore_other_consumers = _check.flag("ignore_other_consumers", ignore_other_consumers)

    def __repr__(self) -> str:
        return (
            f"JetStreamAdapter(erase={self.erase}, concurrency={self.concurrency}, "
            f"ignore_other_consumers={self.ignore_other_consumers})"
        )

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Delete every message with at most `concurrency` requests in flight.

        One outcome per message, in input order: its result, or the error it alone failed
        with (a message that cannot be addressed, a sequence the server refused). Every
        other request is still made.
        """
        return await self._delete_plans([self._plan(m) for m in messages])

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[Client]:
        """A nats-py `Client` for `url` (`nats://`, `tls://`, `ws://`, `wss://`; credentials
        from the URL), connected on entry (two short attempts, no reconnects) and closed on
        exit. Unreachable: [`DeletionFailed`][msgdel.DeletionFailed] (`retryable=True`);
        refused credentials: `retryable=False`; neither text holds the password."""
        return _connected(url)

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[DeleteResult | MsgdelError]:
        """Delete `addresses` ([`JetStreamSequence`][msgdel.address.JetStreamSequence]) on the
        nats-py `Client` `connection`: one entry per address, in input order, with the
        requests, checks and results of
        [`delete_many`][msgdel.adapters.nats.JetStreamAdapter.delete_many].

        Every consumer of the stream counts as another one: a sequence past a consumer's ack
        floor is read first (`STREAM.MSG.GET`) for its subject, then kept (`DEFERRED`) when
        that consumer's filter matches it; an absent sequence is `ALREADY_GONE`, a stream that
        does not exist [`NotDeletable`][msgdel.NotDeletable]."""
        client = _nats_client(self, connection)
        return await self._delete_plans([self._address_plan(client, a) for a in addresses])

    def _address_plan(self, client: Client, address: Any) -> _Plan | MsgdelError:
        if not isinstance(address, JetStreamSequence):
            return _not_mine(self, address, JetStreamSequence, "KV keys go to KeyValueAdapter")
        api = self.api_prefix or "$JS.API"
        return _Plan(client, api, address.stream, (address.sequence,), (None,), (0,), None)

    async def _delete_plans(
        self, plans: list[_Plan | DeleteResult | MsgdelError]
    ) -> list[DeleteResult | MsgdelError]:
        """Check every plan's stream, then send its deletions under `concurrency`: one
        outcome per plan, in order.

        A sequence that needs no reading first goes into one pipelined batch
        (`_Pipeline`); an unsure one (an address past a
        consumer's ack floor) is read, then deleted, afterwards."""
        plans = await self._check_streams(plans)
        outcomes: list[Outcome | BaseException] = []
        plain: list[tuple[_Plan, int]] = []  # and where each one's outcome goes:
        positions: list[int] = []
        unsure: list[tuple[int, Callable[[], Awaitable[Outcome]]]] = []
        for plan in plans:
            if not isinstance(plan, _Plan):
                continue
            if not (plan.gone or plan.keep or plan.unsure):  # the common case: send them all
                for seq in plan.seqs:
                    positions.append(len(outcomes))
                    plain.append((plan, seq))
                    outcomes.append(Outcome.ALREADY_GONE)  # a placeholder, replaced below
                continue
            for seq in plan.seqs:
                if seq in plan.gone:
                    outcomes.append(Outcome.ALREADY_GONE)
                    continue
                if seq in plan.keep:
                    outcomes.append(Outcome.DEFERRED)
                    continue
                if seq in plan.unsure:
                    unsure.append((len(outcomes), self._unsure_job(plan, seq)))
                else:
                    positions.append(len(outcomes))
                    plain.append((plan, seq))
                outcomes.append(Outcome.ALREADY_GONE)  # a placeholder, replaced below
        if plain:
            sent = await _Pipeline(self, plain).run()
            for position, outcome in zip(positions, sent):
                outcomes[position] = outcome
        if unsure:
            read = await _bounded([job for _, job in unsure], self.concurrency)
            for (position, _), outcome in zip(unsure, read):
                outcomes[position] = outcome
        results: list[DeleteResult | MsgdelError] = []
        position = 0
        for plan in plans:
            if not isinstance(plan, _Plan):
                results.append(plan)
                continue
            results.append(plan.outcome(outcomes[position : position + len(plan.seqs)]))
            position += len(plan.seqs)
        return results

    def _plan(self, message: Any) -> _Plan | DeleteResult | MsgdelError:
        """What to send for `message`; or its result or error when nothing is to be sent."""
        raw = getattr(message, "raw_message", None)
        if isinstance(raw, Msg):  # one message, the common case: the same plan, kept cheap
            return self._single_plan(raw)
        msgs: list[Any] = list(raw) if isinstance(raw, list) else [raw]
        if not msgs:
            return NotDeletable(
                "this NatsBatchMessage holds no messages; there is nothing to delete"
            )
        if not all(isinstance(m, Msg) for m in msgs):
            return NotDeletable(
                f"this {type(message).__name__} carries no NATS message (raw_message is "
                f"{raw!r}): no broker delivered it, so there is no stream sequence to delete"
            )
        first = msgs[0]
        if first._client is None:  # FastStream's TestNatsBroker builds messages without a client
            return _skipped(first.subject, [], Semantics.EXACT)
        try:
            fields = [_ack_fields(m.reply) for m in msgs]
        except ValueError:
            return _unaddressable(first)
        found = [f for f in fields if f is not None]
        if len(found) < len(fields):
            return _not_stored(first)
        domain, stream, _, consumer, _ = found[0]
        if len(found) > 1 and any(f[1] != stream for f in found):
            return NotDeletable("this batch mixes messages of several streams; delete them singly")
        prefix = self.api_prefix or (f"$JS.{domain}.API" if domain else "$JS.API")
        seqs = tuple(f[2] for f in found)
        subjects = tuple(m.subject for m in msgs)
        times = tuple(f[4] for f in found)
        return _Plan(first._client, prefix, stream, seqs, subjects, times, consumer)

    def _single_plan(self, msg: Msg) -> _Plan | DeleteResult | MsgdelError:
        """`_plan` of a message that is one nats-py `Msg`: the same outcome, fewer steps."""
        if msg._client is None:
            return _skipped(msg.subject, [], Semantics.EXACT)
        try:
            fields = _ack_fields(msg.reply)
        except ValueError:
            return _unaddressable(msg)
        if fields is None:
            return _not_stored(msg)
        domain, stream, seq, consumer, stamp = fields
        prefix = self.api_prefix or (f"$JS.{domain}.API" if domain else "$JS.API")
        return _Plan(msg._client, prefix, stream, (seq,), (msg.subject,), (stamp,), consumer)

    async def _check_streams(
        self, plans: list[_Plan | DeleteResult | MsgdelError]
    ) -> list[_Plan | DeleteResult | MsgdelError]:
        """Read each stream's state once per call, and from it mark what not to delete:

        - the sequences of a message older than the stream itself (the stream was deleted and
          created again under its name: the sequence now holds another message): gone;
        - unless `ignore_other_consumers`, the sequences another consumer of a limits or
          work-queue stream still needs (not acknowledged past its ack floor, and matching
          its filter): kept. A sequence whose subject is not known (an address) and that lies
          past some consumer's ack floor is marked unsure: its job reads its subject first.

        `STREAM.INFO` and `CONSUMER.LIST` go in flight together. A stream that no longer
        exists makes its messages `ALREADY_GONE` (an address of it `NotDeletable`); one whose
        state cannot be read fails its own messages.
        """
        streams: dict[tuple[int, str, str], list[_Plan]] = {}
        for plan in plans:
            if isinstance(plan, _Plan):
                streams.setdefault((id(plan.client), plan.api, plan.stream), []).append(plan)
        if not streams:
            return plans
        states = await asyncio.gather(
            *(self._stream_state(group[0]) for group in streams.values()), return_exceptions=True
        )
        done: dict[int, DeleteResult | MsgdelError] = {}
        for group, state in zip(streams.values(), states):
            # the consumers other than each reading one: no other, nothing to keep or read
            others_of: dict[str | None, list[_Consumer]] = {}
            for plan in group:
                if isinstance(state, BaseException):
                    done[id(plan)] = _as_msgdel_error(plan.reading, state)
                elif state is None and plan.addressed:  # an address names a wrong stream
                    done[id(plan)] = NotDeletable(
                        f"JetStream stream {plan.stream!r} does not exist (API {plan.api!r}); "
                        "nothing was deleted"
                    )
                elif state is None:  # no such stream: nothing of it is stored
                    done[id(plan)] = DeleteResult(
                        BROKER, plan.stream, plan.seqs, Semantics.EXACT, Outcome.ALREADY_GONE
                    )
                else:
                    created, consumers = state
                    if min(plan.times) < created:  # some may be older (0: not known)
                        plan.gone = frozenset(
                            seq for seq, time in zip(plan.seqs, plan.times) if 0 < time < created
                        )
                    others = others_of.get(plan.consumer)
                    if others is None:
                        others = [o for o in consumers if o.name != plan.consumer]
                        others_of[plan.consumer] = others
                    if not others:
                        continue
                    plan.keep = frozenset(
                        seq
                        for seq, subject in zip(plan.seqs, plan.subjects)
                        if subject is not None
                        and any(o.needs(seq, subject, plan.consumer) for o in others)
                    )
                    plan.unsure = {
                        seq: waiting
                        for seq, subject in zip(plan.seqs, plan.subjects)
                        if subject is None
                        and (waiting := tuple(o for o in others if o.waits(seq, plan.consumer)))
                    }
        if not done:
            return plans
        return [done.get(id(p), p) if isinstance(p, _Plan) else p for p in plans]

    async def _stream_state(self, plan: _Plan) -> tuple[int, list[_Consumer]] | None:
        """When `plan`'s stream was created (ns), and the consumers that can still need a
        message (none where its retention waits for them itself: interest); None when the
        stream does not exist."""
        _check_connected(plan.client, plan.reading)
        listing = f"CONSUMER.LIST.{plan.stream}"
        calls = [self._api(plan, f"STREAM.INFO.{plan.stream}", b"")]
        if not self.ignore_other_consumers:
            calls.append(self._api(plan, listing, b'{"offset":0}'))
        info, *pages = await asyncio.gather(*calls)  # in flight together
        if info is None:
            return None
        created = _nanoseconds(str(info.get("created") or ""))
        config = info.get("config") or {}
        if not pages or pages[0] is None or config.get("retention", "limits") == "interest":
            return created, []
        consumers: list[_Consumer] = []
        page: dict[str, Any] | None = pages[0]
        while page is not None:
            found = page.get("consumers") or []
            consumers.extend(_Consumer.of(c) for c in found)
            if not found or len(consumers) >= int(page.get("total") or 0):
                break
            page = await self._api(plan, listing, b'{"offset":%d}' % len(consumers))
        return created, consumers

    async def _api(
        self, plan: _Plan, call: str, body: bytes, missing: int = STREAM_NOT_FOUND_CODE
    ) -> dict[str, Any] | None:
        """A JetStream API answer; None when the stream does not exist (or the answer's
        error code is `missing`)."""
        try:
            reply = await plan.client.request(f"{plan.api}.{call}", body, timeout=self.timeout)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise _transport_error(plan.reading, exc, plan.client) from exc
        answer: dict[str, Any] = json.loads(reply.data)
        if error := answer.get("error"):
            if int(error.get("err_code") or 0) in (STREAM_NOT_FOUND_CODE, missing):
                return None
            # 503: the stream has no leader or quorum right now (a failover), 408: timed out.
            status = int(error.get("code") or 0)
            retryable = status in _RETRYABLE_STATUS
            hint = "; nothing was deleted, and retrying is safe" if retryable else ""
            raise DeletionFailed(f"could not {plan.reading}: {error}{hint}", retryable=retryable)
        return answer

    def _unsure_job(self, plan: _Plan, seq: int) -> Callable[[], Awaitable[Outcome]]:
        """Read the subject of an address past a consumer's ack floor, then keep it
        (`DEFERRED`) for a consumer that needs it, or delete it with a request of its own."""

        async def run() -> Outcome:
            subject = await self._subject_of(plan, seq)
            if subject is None:
                return Outcome.ALREADY_GONE
            if any(o.needs(seq, subject, plan.consumer) for o in plan.unsure[seq]):
                return Outcome.DEFERRED
            return await self._delete_seq(plan, seq)

        return run

    async def _subject_of(self, plan: _Plan, seq: int) -> str | None:
        """The subject of the message at `seq` (`STREAM.MSG.GET`); None when there is none."""
        _check_connected(plan.client, plan.reading)
        call = f"STREAM.MSG.GET.{plan.stream}"
        answer = await self._api(plan, call, b'{"seq":%d}' % seq, NO_MESSAGE_CODE)
        return None if answer is None else str((answer.get("message") or {}).get("subject"))

    def _body(self, seq: int) -> bytes:
        """The `STREAM.MSG.DELETE` request for `seq`."""
        return (_ERASE if self.erase else _NO_ERASE) % seq

    async def _delete_seq(self, plan: _Plan, seq: int) -> Outcome:
        """Delete `seq` with a nats-py request of its own (after a `STREAM.MSG.GET`)."""
        what = plan.what(seq)
        _check_connected(plan.client, what)
        try:
            reply = await plan.client.request(plan.subject, self._body(seq), timeout=self.timeout)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise _transport_error(what, exc, plan.client) from exc
        return _answer(plan.stream, seq, reply)


def _answer(stream: str, seq: int, reply: Msg) -> Outcome:
    """What JetStream's answer to deleting `seq` says: `DELETED` only for its success reply,
    `ALREADY_GONE`, or the matching msgdel error raised (no responders: `NoRespondersError`)."""
    data = reply.data
    if data.startswith(_SUCCESS):
        return Outcome.DELETED
    if not data and (reply.headers or {}).get("Status") == _NO_RESPONDERS:
        raise nats.errors.NoRespondersError
    error = json.loads(data).get("error")
    if not error:
        return Outcome.DELETED
    return _jetstream_error(stream, seq, error)


_NO_RESPONDERS = "503"
"""The status of the reply the server sends in place of a responder that does not exist."""


class _Unanswered:
    """The state of a request in a `_Pipeline` until it has its outcome."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_UNSENT = _Unanswered("unsent")
_SENT = _Unanswered("sent")

_TICK = 0.05
"""Seconds between a `_Pipeline`'s checks of its requests' deadlines and its connections."""
_REFILL = 5
"""A full `_Pipeline` sends again once a fifth of its window (`concurrency`) is answered."""


class _Pipeline:
    """The plain deletions of one call (no subject to read first), pipelined: one
    subscription per client on a fresh inbox wildcard, each request published with the reply
    subject `<inbox>.<index>`, at most `concurrency` unanswered at once.

    One timer serves the whole batch: each tick fails the requests older than `timeout`
    that have no answer, and everything unanswered on a connection that dropped. What it
    guarantees, per request:

    - `DELETED` only for JetStream's success reply to that very request; other replies map
      as `_answer` maps them;
    - no reply within `timeout` of its sending: a retryable `DeletionFailed` saying whether
      it was deleted is unknown and a retry is safe (what is gone then reports `ALREADY_GONE`);
    - a connection reconnecting before or during the batch, or reconnected during it: what
      it had not answered fails retryably (sent: unknown; not sent: nothing was sent), and
      nothing more is sent on it; a closed one fails what it had not sent as `_transport_error`
      maps nats-py's `ConnectionClosedError`;
    - a reply that comes after its request failed, or after the batch ended, is dropped: the
      subscriptions end with the batch.
    """

    __slots__ = (
        "adapter", "clients", "dead", "loop", "oldest", "outstanding", "reconnects", "refill",
        "requests", "rescan", "sent_at", "states", "timer", "wake",
    )  # fmt: skip

    def __init__(self, adapter: JetStreamAdapter, requests: list[tuple[_Plan, int]]) -> None:
        self.adapter = adapter
        self.requests = requests
        self.states: list[Outcome | BaseException | _Unanswered] = [_UNSENT] * len(requests)
        self.sent_at: list[float] = []  # by index, in sending order
        self.oldest = 0  # every request before it has its outcome
        self.outstanding = 0  # sent, not answered, not failed
        self.refill = 0  # an answer wakes the sender once no more than this many are unanswered
        self.dead: dict[int, Callable[[int], MsgdelError]] = {}  # by id(client)
        self.wake: asyncio.Future[None] | None = None
        self.loop = asyncio.get_running_loop()
        self.clients = list({id(plan.client): plan.client for plan, _ in requests}.values())
        self.reconnects = [_reconnects(c) for c in self.clients]  # a change: it dropped
        self.timer: asyncio.TimerHandle | None = None
        self.rescan = False  # a client was given up: fail what it left unanswered

    async def run(self) -> list[Outcome | BaseException]:
        """Every request's outcome (or error), by index."""
        subscriptions: dict[int, Subscription] = {}
        inboxes: dict[int, str] = {}
        self.timer = self.loop.call_later(_TICK, self._tick)
        try:
            for client in self.clients:
                inbox = await self._subscribe(client, subscriptions)
                if inbox is not None:
                    inboxes[id(client)] = inbox
            await self._send(inboxes)
        finally:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.wake = None
            for subscription in subscriptions.values():
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
        # every request has its outcome by now; should one not, it is not reported deleted
        return [
            self._dropped(i) if isinstance(s, _Unanswered) else s for i, s in enumerate(self.states)
        ]

    async def _subscribe(
        self, client: Client, subscriptions: dict[int, Subscription]
    ) -> str | None:
        """Subscribe to a fresh inbox of `client` for its replies; the inbox, or None when
        its requests were failed instead (the connection is down or closed)."""
        inbox = client.new_inbox()
        cut = len(inbox) + 1
        states, requests = self.states, self.requests

        async def on_reply(msg: Msg) -> None:
            try:
                index = int(msg.subject[cut:])
            except ValueError:
                return
            if not 0 <= index < len(states) or states[index] is not _SENT:
                return  # its request failed already (a late reply), or the batch ended
            plan, seq = requests[index]
            try:
                states[index] = _answer(plan.stream, seq, msg)
            except Exception as exc:
                states[index] = _as_reply_error(plan, seq, exc)
            self.outstanding -= 1
            if self.outstanding <= self.refill and self.wake is not None and not self.wake.done():
                self.wake.set_result(None)

        if client.is_reconnecting or client.is_connecting:
            self._bury(client, None)
            return None
        try:
            subscriptions[id(client)] = await client.subscribe(f"{inbox}.*", cb=on_reply)
        except Exception as exc:
            self._bury(client, exc)
            return None
        return inbox

    async def _send(self, inboxes: dict[int, str]) -> None:
        """Publish every request in order, at most `concurrency` unanswered; return once each
        has its outcome.

        Once the window is full, the next requests go out `_REFILL` at a time (of the
        window), when as many answers freed their slots: the server keeps the rest of the
        window queued meanwhile, and the requests reach it in a few writes, not one each."""
        limit = self.adapter.concurrency
        step = max(1, limit // _REFILL)
        body = self.adapter._body
        states, requests, dead = self.states, self.requests, self.dead
        index, total = 0, len(requests)
        while True:
            while index < total and self.outstanding < limit:
                plan, seq = requests[index]
                client = plan.client
                failing = dead.get(id(client))
                if failing is None and (client.is_reconnecting or client.is_connecting):
                    self._bury(client, None)
                    failing = dead[id(client)]
                if failing is not None:
                    states[index] = failing(index)
                    self.sent_at.append(0.0)
                    index += 1
                    continue
                try:
                    await client.publish(
                        plan.subject, body(seq), reply=f"{inboxes[id(client)]}.{index}"
                    )
                except Exception as exc:
                    states[index] = _as_reply_error(plan, seq, exc)
                    if isinstance(exc, nats.errors.ConnectionClosedError):
                        self._bury(client, exc)
                else:
                    states[index] = _SENT
                    self.outstanding += 1
                self.sent_at.append(self.loop.time())
                index += 1
            if index >= total and self.outstanding <= 0:
                return
            # woken by the answer that frees `step` slots (or the last ones), or by the timer
            self.refill = limit - min(step, total - index) if index < total else 0
            self.wake = self.loop.create_future()
            await self.wake

    def _tick(self) -> None:
        """Fail what timed out and what a dropped connection left unanswered; wake the
        sender; come again in `_TICK` s."""
        states, sent_at = self.states, self.sent_at
        expired = self.loop.time() - self.adapter.timeout
        settled = False
        # the requests are sent in index order: the unanswered are from `oldest` on
        while self.oldest < len(sent_at):
            state = states[self.oldest]
            if state is _SENT:
                if sent_at[self.oldest] > expired:
                    break
                states[self.oldest] = self._timed_out(self.oldest)
                self.outstanding -= 1
                settled = True
            self.oldest += 1
        broken = [
            c
            for c, before in zip(self.clients, self.reconnects)
            if id(c) not in self.dead and (not c.is_connected or _reconnects(c) != before)
        ]
        for client in broken:
            closed = nats.errors.ConnectionClosedError() if client.is_closed else None
            self._bury(client, closed)
        if self.rescan:
            self.rescan = False
            for index in range(self.oldest, len(sent_at)):
                if states[index] is _SENT and id(self.requests[index][0].client) in self.dead:
                    states[index] = self._dropped(index)
                    self.outstanding -= 1
                    settled = True
        if settled and self.wake is not None and not self.wake.done():
            self.wake.set_result(None)
        if self.timer is not None:
            self.timer = self.loop.call_later(_TICK, self._tick)

    def _bury(self, client: Client, exc: BaseException | None) -> None:
        """Send nothing more on `client`: what it has not sent fails with `exc` (None: it
        is reconnecting), as nats-py's error or `_check_connected`'s would."""
        plan_of = self.requests

        def failing(index: int) -> MsgdelError:
            plan, seq = plan_of[index]
            what = plan.what(seq)
            if exc is None:
                try:
                    _check_connected(client, what)
                except DeletionFailed as error:
                    return error
                return DeletionFailed(
                    f"could not {what}: the NATS connection dropped during this batch; "
                    "nothing was sent. Retry once it has reconnected.",
                    retryable=True,
                )
            return _as_reply_error(plan, seq, exc)

        self.dead[id(client)] = failing
        self.rescan = True

    def _timed_out(self, index: int) -> MsgdelError:
        plan, seq = self.requests[index]
        return _transport_error(plan.what(seq), nats.errors.TimeoutError(), plan.client)

    def _dropped(self, index: int) -> MsgdelError:
        plan, seq = self.requests[index]
        return DeletionFailed(
            f"could not {plan.what(seq)}: the NATS connection dropped before JetStream "
            "answered, so whether it did is unknown; deleting again is safe (what is gone "
            "then reports ALREADY_GONE)",
            retryable=True,
        )


def _reconnects(client: Client) -> int:
    """How often nats-py has reconnected `client` so far."""
    return int(client.stats.get("reconnects") or 0)


def _as_reply_error(plan: _Plan, seq: int, exc: BaseException) -> MsgdelError:
    """`exc`, met deleting `seq`, as the msgdel error `_delete_seq` would raise."""
    if isinstance(exc, MsgdelError):
        return exc
    if isinstance(exc, nats.errors.Error | asyncio.TimeoutError):
        return _transport_error(plan.what(seq), exc, plan.client)
    return _as_msgdel_error(plan.what(seq), exc)


_NO_ERASE = b'{"seq":%d,"no_erase":true}'
_ERASE = b'{"seq":%d}'
_SUCCESS = b'{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","success":true'


def _ack_fields(reply: str | None) -> tuple[str, str, int, str, int] | None:
    """(domain, stream, stream sequence, consumer, timestamp in ns or 0) from a JetStream ack
    subject; `None` for core NATS; `ValueError` when the sequence is not a number.

    The two layouts are nats-py's (`Msg.Metadata`), parsed without its timestamp work:
    `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>` (9 tokens) and
    `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>...`
    (11+).
    """
    if not reply or not reply.startswith("$JS.ACK."):
        return None
    tokens = reply.split(".")
    if len(tokens) == 9:
        domain, stream, consumer, seq, stamp = "", tokens[2], tokens[3], tokens[5], tokens[7]
    elif len(tokens) >= 11:
        domain = "" if tokens[2] == "_" else tokens[2]
        stream, consumer, seq, stamp = tokens[4], tokens[5], tokens[7], tokens[9]
    else:
        return None
    return domain, stream, int(seq), consumer, int(stamp) if stamp.isdigit() else 0


def _nanoseconds(stamp: str) -> int:
    """An RFC 3339 time as the server writes it (`2026-12-01T11:16:27.123456789Z`) in ns
    since the epoch; 0 when it cannot be read (nothing is then taken for re-created)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", stamp)
    if match is None:
        return 0
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


def subject_matches(filter_subject: str, subject: str) -> bool:
    """Whether NATS `subject` matches `filter_subject` (`*` one token, `>` the rest)."""
    wanted, tokens = filter_subject.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or (token != "*" and token != tokens[index]):
            return False
    return len(tokens) == len(wanted)


class _Consumer:
    """What the server says of one consumer of a stream: which messages it still needs."""

    __slots__ = ("filters", "floor", "name")

    def __init__(self, name: str, floor: int, filters: tuple[str, ...]) -> None:
        self.name = name
        self.floor = floor  # every sequence up to here is acknowledged (or delivered)
        self.filters = filters  # empty: every subject of the stream

    @classmethod
    def of(cls, info: dict[str, Any]) -> _Consumer:
        config = info.get("config") or {}
        filters = tuple(config.get("filter_subjects") or ()) or (
            (config["filter_subject"],) if config.get("filter_subject") else ()
        )
        if config.get("ack_policy") == "none":  # delivered is as good as acknowledged
            floor = int((info.get("delivered") or {}).get("stream_seq") or 0)
        else:
            floor = int((info.get("ack_floor") or {}).get("stream_seq") or 0)
        return cls(str(info.get("name") or config.get("name") or ""), floor, filters)

    def waits(self, seq: int, reader: str | None) -> bool:
        """Whether this consumer is not `reader` (None for an address: no consumer is) and has
        not acknowledged `seq` yet, whatever its subject."""
        return self.name != reader and seq > self.floor

    def needs(self, seq: int, subject: str, reader: str | None) -> bool:
        """Whether this consumer, not `reader` itself, may still deliver or await `seq`.

        Past its ack floor a sequence may have been acknowledged out of order; the server
        does not list those, so it counts as needed: kept rather than lost."""
        if not self.waits(seq, reader):
            return False
        return not self.filters or any(subject_matches(f, subject) for f in self.filters)


_NO_SEQS: frozenset[int] = frozenset()
_NO_WAITING: Mapping[int, tuple[_Consumer, ...]] = MappingProxyType({})
"""A plan's `keep`, `gone` and `unsure` until its stream's state says otherwise (shared: a
plan's own are built whole, never changed in place)."""


class _Plan:
    """One FastStream message's (or address's) deletion requests: the client, API prefix and
    sequences. An address has no reading consumer (`consumer` None), no known subjects and no
    timestamps (0)."""

    __slots__ = (
        "api", "client", "consumer", "gone", "keep", "seqs", "stream", "subject", "subjects",
        "times", "unsure",
    )  # fmt: skip

    def __init__(
        self,
        client: Client,
        api: str,
        stream: str,
        seqs: tuple[int, ...],
        subjects: tuple[str | None, ...],
        times: tuple[int, ...],
        consumer: str | None,
    ) -> None:
        self.client = client
        self.api = api
        self.subject = f"{api}.STREAM.MSG.DELETE.{stream}"
        self.stream = stream
        self.seqs = seqs
        self.subjects = subjects  # each sequence's message subject
        self.consumer = consumer  # the consumer that delivered it
        self.times = times  # each sequence's message timestamp, ns
        self.keep = _NO_SEQS  # sequences another consumer still needs
        self.gone = _NO_SEQS  # older than the stream: another message now
        self.unsure = _NO_WAITING  # unknown subject, past their floors: the consumers

    @property
    def addressed(self) -> bool:
        """Whether this plan deletes an address (no consumer read it)."""
        return self.consumer is None

    @property
    def reading(self) -> str:
        return f"read the state of JetStream stream {self.stream!r}"

    def what(self, seq: int) -> str:
        return f"delete sequence {seq} from JetStream stream {self.stream!r}"

    def outcome(self, outcomes: Sequence[Outcome | BaseException]) -> DeleteResult | MsgdelError:
        """The message's result from its sequences' outcomes, or the first one's error."""
        if len(outcomes) == 1 and outcomes[0] is Outcome.DELETED:  # the common case, kept cheap
            ids = (str(self.seqs[0]),)
            return DeleteResult(BROKER, self.stream, ids, Semantics.EXACT, Outcome.DELETED, 1)
        removed = sum(1 for o in outcomes if o is Outcome.DELETED)
        for seq, outcome in zip(self.seqs, outcomes):
            if not isinstance(outcome, BaseException):
                continue
            error = _as_msgdel_error(self.what(seq), outcome)
            if not removed:
                return error
            return DeletionFailed(
                f"deleted {removed} of the {len(self.seqs)} sequences of this batch message "
                f"from JetStream stream {self.stream!r}, but not sequence {seq}: {error} "
                "Deleting the message again deletes what is left.",
                retryable=getattr(error, "retryable", False),
                cause=error,
            )
        if any(o is Outcome.DEFERRED for o in outcomes):
            outcome = Outcome.DEFERRED  # kept, for now, for another consumer
        else:
            outcome = Outcome.DELETED if removed else Outcome.ALREADY_GONE
        return DeleteResult(BROKER, self.stream, self.seqs, Semantics.EXACT, outcome, removed)


def _unaddressable(msg: Msg) -> MsgdelError:
    return NotDeletable(
        f"the JetStream ack subject {msg.reply!r} names no stream sequence; "
        "there is nothing to address"
    )


def _not_stored(msg: Msg) -> DeleteResult:
    """Core NATS: the server never stored it."""
    return DeleteResult(BROKER, msg.subject, [], Semantics.NOT_STORED, Outcome.NOTHING_STORED)


def _jetstream_error(stream: str, seq: int, error: dict[str, Any]) -> Outcome:
    """Map a JetStream API error to `ALREADY_GONE` or raise the matching msgdel error."""
    code = int(error.get("err_code") or 0)
    status = int(error.get("code") or 0)
    text = str(error.get("description", ""))
    if "not permitted" in text:
        # nats-server answers deny_delete with 10057 too: check the text first.
        raise UnsupportedDeletion(
            f"JetStream stream {stream!r} has deny_delete set, so single messages cannot be "
            "deleted from it; its messages leave only by its limits or a purge. Remove "
            "deny_delete from the stream's configuration to delete messages."
        )
    if code in ALREADY_DELETED_CODES or code == STREAM_NOT_FOUND_CODE:
        return Outcome.ALREADY_GONE
    raise DeletionFailed(
        f"JetStream refused to delete sequence {seq} from stream {stream!r}: {text} "
        f"(status {status}, code {code})",
        retryable=status in _RETRYABLE_STATUS,
    )


# -- KV and object store ------------------------------------------------------------------------
class _BucketAdapter(BaseAdapter):
    """Finds the JetStream context for KV and object-store entries, which carry no client.

    `connection` may be a FastStream `NatsBroker`, a nats-py `Client` or a
    `JetStreamContext`. Without one, the adapter uses the broker of the FastStream handler
    that is running (so the default registry works inside handlers).
    """

    features = Features(BROKER, Semantics.EXACT, coalesces=False)
    _entries = "entries"
    """What the adapter deletes, for error texts."""

    def __init__(self, connection: Any = None, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.connection = connection
        self.concurrency = _check.at_least("concurrency", concurrency, 1)

    def _jetstream(self, message: Any) -> tuple[JetStreamContext, Client | None] | None:
        """The JetStream context to use and the client under it (when known); `None` under
        FastStream's in-memory test broker."""
        source = self.connection
        config = getattr(source, "config", None) if source is not None else handler_config(message)
        if config is not None:
            if under_test_broker(config):
                return None
            try:
                state = config.connection_state
                stream: JetStreamContext = state.stream
            except Exception as exc:
                raise DeletionFailed(
                    f"the NATS broker is not connected; connect it before deleting {self._entries}",
                    retryable=True,
                    cause=exc,
                ) from exc
            return stream, _client_of(getattr(state, "connection", None))
        if source is None:
            raise UnsupportedDeletion(
                f"{self._entries} do not carry their connection and no FastStream handler is "
                f"running: register the adapter with your broker, e.g. msgdel.register("
                f"NatsKvMessage, {type(self).__name__}(broker), replace=True)"
            )
        if hasattr(source, "jetstream"):
            client: Client = source
            return client.jetstream(), _client_of(client)
        context: JetStreamContext = source
        return context, _client_of(getattr(context, "_nc", None))

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Delete every entry, at most `concurrency` at once: one outcome per entry, in
        input order, its result or the error it alone failed with."""
        return await self._run([self._job(m) for m in messages])

    async def _run(
        self, jobs: Sequence[Callable[[], Awaitable[DeleteResult]]]
    ) -> list[DeleteResult | MsgdelError]:
        """Run `jobs` under `concurrency`: each one's result, or the error it failed with."""
        outcomes = await _bounded(jobs, self.concurrency)
        return [
            o
            if isinstance(o, DeleteResult)
            else _as_msgdel_error(f"delete one of {self._entries}", o)
            for o in outcomes
        ]

    def _job(self, message: Any) -> Callable[[], Awaitable[DeleteResult]]:
        async def run() -> DeleteResult:
            return await self._delete_one(message)

        return run

    async def _delete_one(self, message: Any) -> DeleteResult:
        raise NotImplementedError


def _client_of(candidate: object) -> Client | None:
    return candidate if isinstance(candidate, Client) else None


class _Key:
    """One KV deletion: the bucket, the key, and the consumed revision to delete; an
    address names only the key (`addressed`): the revision it holds is read first."""

    __slots__ = ("addressed", "bucket", "key", "revision")

    def __init__(
        self, bucket: str, key: str, revision: int | None, *, addressed: bool = False
    ) -> None:
        self.bucket = bucket
        self.key = key
        self.revision = revision
        self.addressed = addressed


class KeyValueAdapter(_BucketAdapter):
    """Deletes the key of a consumed KV watch entry (`NatsKvMessage`), or of a
    [`KvKey`][msgdel.address.KvKey] address.

    By default a delete marker is written and the key's history is kept; `purge=True`
    removes the history too. Only the consumed revision is deleted: if the key changed since,
    [`NotDeletable`][msgdel.NotDeletable] is raised and the newer value stays. An entry that is
    itself a delete or purge marker (a watcher sees its own delete as a new event) gives
    `ALREADY_GONE` and sends nothing, which keeps a delete-on-consume handler from looping.

    An address deletes the revision the key holds when it is read, just before the delete
    (the same request with that revision expected); a missing or deleted key is
    `ALREADY_GONE`, a bucket that does not exist [`NotDeletable`][msgdel.NotDeletable].
    """

    features = Features(BROKER, Semantics.EXACT, coalesces=False, by_address=True)
    _entries = "KV entries"

    def __init__(
        self,
        connection: Any = None,
        *,
        purge: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        super().__init__(connection, concurrency=concurrency)
        self.purge = _check.flag("purge", purge)

    def __repr__(self) -> str:
        return f"KeyValueAdapter(purge={self.purge})"

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[Client]:
        """A nats-py `Client` for `url`, as
        [`JetStreamAdapter.connect`][msgdel.adapters.nats.JetStreamAdapter.connect] opens it."""
        return _connected(url)

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[DeleteResult | MsgdelError]:
        """Delete (or purge) `addresses` ([`KvKey`][msgdel.address.KvKey]) on the nats-py
        `Client` `connection`: one entry per address, in input order, at most `concurrency`
        at once, with the requests and results of `delete_many`."""
        client = _nats_client(self, connection)
        js = client.jetstream()

        def job(address: Any) -> Callable[[], Awaitable[DeleteResult]]:
            async def run() -> DeleteResult:
                if not isinstance(address, KvKey):
                    raise _not_mine(self, address, KvKey, "stream sequences go to JetStreamAdapter")
                return await self._delete_key(
                    js, client, _Key(address.bucket, address.key, None, addressed=True)
                )

            return run

        return await self._run([job(a) for a in addresses])

    async def _delete_one(self, message: Any) -> DeleteResult:
        """Delete (or purge) the entry's key if it still holds the consumed revision."""
        entry = getattr(message, "raw_message", None)
        if not isinstance(entry, KeyValue.Entry):
            raise NotDeletable(
                f"this {type(message).__name__} carries no KV entry (raw_message is "
                f"{entry!r}): no KV watcher delivered it, so there is no key to delete"
            )
        if entry.operation in ("DEL", "PURGE"):
            return DeleteResult(
                BROKER, entry.bucket, [entry.key], self.semantics, Outcome.ALREADY_GONE
            )
        connected = self._jetstream(message)
        if connected is None:
            return _skipped(entry.bucket, [entry.key], self.semantics)
        js, client = connected
        return await self._delete_key(js, client, _Key(entry.bucket, entry.key, entry.revision))

    async def _delete_key(
        self, js: JetStreamContext, client: Client | None, key: _Key
    ) -> DeleteResult:
        """Delete (or purge) `key` if it still holds its revision (for an address, the one it
        holds when read here)."""
        gone = DeleteResult(BROKER, key.bucket, [key.key], self.semantics, Outcome.ALREADY_GONE)
        what = f"delete key {key.key!r} from KV bucket {key.bucket!r}"
        _check_connected(client, what)
        revision = key.revision
        try:
            kv = await js.key_value(key.bucket)
            if key.addressed:
                revision = (await kv.get(key.key)).revision
            headers = {"KV-Operation": "PURGE" if self.purge else "DEL"}
            if self.purge:
                headers["Nats-Rollup"] = "sub"
            if revision:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(revision)
            subject = getattr(kv, "_pre", f"$KV.{key.bucket}.") + key.key
            await js.publish(subject, b"", headers=headers)
        except nats.js.errors.BucketNotFoundError:
            if key.addressed:
                raise NotDeletable(
                    f"NATS has no KV bucket {key.bucket!r}; nothing was deleted"
                ) from None
            return gone
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return gone  # an address's key: no value, or deleted already
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE_CODE:
                return await self._changed(js, key, revision, what)
            raise DeletionFailed(f"could not {what}: {exc}", retryable=False, cause=exc) from exc
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise _transport_error(what, exc, client) from exc
        return DeleteResult(BROKER, key.bucket, [key.key], self.semantics, Outcome.DELETED, 1)

    async def _changed(
        self, js: JetStreamContext, key: _Key, revision: int | None, what: str
    ) -> DeleteResult:
        """The key moved past `revision`: gone already, or a newer value we keep."""
        try:
            kv = await js.key_value(key.bucket)
            current = await kv.get(key.key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return DeleteResult(BROKER, key.bucket, [key.key], self.semantics, Outcome.ALREADY_GONE)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise _transport_error(what, exc) from exc
        if key.addressed:
            raise NotDeletable(
                f"key {key.key!r} in KV bucket {key.bucket!r} was written again (revision "
                f"{current.revision}) while msgdel deleted revision {revision}; the newer value "
                "was kept: delete the address again to delete it"
            )
        raise NotDeletable(
            f"key {key.key!r} in KV bucket {key.bucket!r} changed to revision "
            f"{current.revision} after the consumed revision {revision}; msgdel deletes only "
            "the value it was given, so the newer value was kept"
        )


class ObjectStoreAdapter(_BucketAdapter):
    """Deletes the object of a consumed object-store watch entry (`NatsObjMessage`).

    Only the consumed object is deleted: if the name now holds a newer object (another
    upload), [`NotDeletable`][msgdel.NotDeletable] is raised. An entry that reports a deleted object
    (a watcher sees its own delete) gives `ALREADY_GONE` and sends nothing.
    """

    _entries = "object-store entries"

    def __repr__(self) -> str:
        return "ObjectStoreAdapter()"

    async def _delete_one(self, message: Any) -> DeleteResult:
        """Delete the entry's object, its chunks included, if it is still the same upload."""
        info = getattr(message, "raw_message", None)
        if not isinstance(info, ObjectInfo):
            raise NotDeletable(
                f"this {type(message).__name__} carries no object-store entry (raw_message is "
                f"{info!r}): no object-store watcher delivered it, so there is no object to delete"
            )
        gone = DeleteResult(BROKER, info.bucket, [info.name], self.semantics, Outcome.ALREADY_GONE)
        if info.deleted:
            return gone
        connected = self._jetstream(message)
        if connected is None:
            return _skipped(info.bucket, [info.name], self.semantics)
        js, client = connected
        what = f"delete object {info.name!r} from object store {info.bucket!r}"
        _check_connected(client, what)
        try:
            store: ObjectStore = await js.object_store(info.bucket)
            current = await store.get_info(info.name)
            if current.nuid != info.nuid:
                raise NotDeletable(
                    f"object {info.name!r} in bucket {info.bucket!r} was replaced by a newer "
                    "upload after this entry; msgdel deletes only the object it was given"
                )
            await store.delete(info.name)
        except (nats.js.errors.NotFoundError, nats.js.errors.ObjectDeletedError):
            return gone
        except MsgdelError:
            raise
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise _transport_error(what, exc) from exc
        return DeleteResult(BROKER, info.bucket, [info.name], self.semantics, Outcome.DELETED, 1)
