"""The JetStream reaper: messages a durable consumer gave up on (max deliveries, terminated)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

try:
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("nats") from exc

import msgdel
from msgdel.adapters.nats import JetStreamAdapter, subject_matches
from msgdel.address import JetStreamSequence
from msgdel.errors import DeletionFailed, MsgdelError, redact
from msgdel.reaper._base import SAMPLE, Runner, SweepReport, Tally, positive
from msgdel.registry import Registry, default_registry

MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"
"""The advisories (`<prefix>.<stream>.<consumer>`) the reaper listens to."""

ORIGIN_STREAM = "Msgdel-Origin-Stream"
ORIGIN_SEQUENCE = "Msgdel-Origin-Sequence"
ORIGIN_SUBJECT = "Msgdel-Origin-Subject"
ORIGIN_CONSUMER = "Msgdel-Origin-Consumer"
DELIVERIES = "Msgdel-Deliveries"
REASON = "Msgdel-Reason"
"""The headers a dead-letter copy has beside the message's own."""

COPIES = 32
"""Dead-letter copies in flight at once."""

_Dead = tuple[int, int, str, Any]
"""A dead message: its sequence, deliveries (0: not known), why it is dead, and the message
itself when it was fetched already (else None)."""


class JetStreamReaper(Runner):
    """Reaps the messages one durable consumer of a JetStream stream gave up on.

    Running (`async with`, `start()`, `attach(app)`), it listens to the consumer's
    `MAX_DELIVERIES` advisories (and, with `terminated=True`, its `MSG_TERMINATED` ones: a
    handler's `term()`), and reaps each message named: with `dead_letter`, it is fetched by
    sequence and published to that subject with JetStream (the copy is acknowledged stored
    first: a subject no stream captures fails it, and nothing is deleted), with its headers
    and body, plus `Msgdel-Origin-Stream`, `-Sequence`, `-Subject`, `-Consumer`,
    `Msgdel-Deliveries` and `Msgdel-Reason`, and a `Nats-Msg-Id` of its origin, so that a
    copy repeated after a crash is dropped as a duplicate within the dead-letter stream's
    duplicate window; then it is deleted through [`msgdel.delete_at`][msgdel.delete_at] with
    `JetStreamAdapter(ignore_other_consumers=...)`, with that adapter's results, seen by the
    registry's observers. (On a work-queue stream the server removes a terminated message
    itself: its advisory finds it `ALREADY_GONE`, with nothing to copy.)

    `ignore_other_consumers=True` (the default): the consumer that gave up never
    acknowledges the message, so the adapter's default (keep it while a consumer of the
    stream still needs it) would keep it for ever for that consumer. On a work-queue stream
    (one consumer per subject) that is what is wanted; on a limits stream read by other
    consumers too, it deletes the message for them as well: pass False there, and the
    message is deleted only once every other consumer has acknowledged it (`DEFERRED`
    until then; a later sweep does not find it again).

    Advisories are not stored: those sent while the reaper was down are recovered by
    [`sweep`][msgdel.reaper._nats.JetStreamReaper.sweep], run on start and every `interval`
    until it completes. On a work-queue stream an acknowledged message is removed, so a
    message still stored between the consumer's ack floor and its last delivery, while none
    is awaiting an acknowledgement, was given up; on other streams the consumer's state does
    not tell dead from acknowledged messages, and only advisories are used.
    """

    def __init__(
        self,
        connection: Client | str,
        *,
        stream: str,
        consumer: str,
        dead_letter: str | None = None,
        ignore_other_consumers: bool = True,
        terminated: bool = True,
        interval: float = 30.0,
        timeout: float = 5.0,
        dry_run: bool = False,
        sample: int = SAMPLE,
        registry: Registry | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(connection, (Client, str)):
            raise TypeError(
                f"connection must be a connected nats-py Client or a nats:// URL, got "
                f"{connection!r}"
            )
        JetStreamSequence(stream, 1)  # a valid stream name, or ValueError
        for name, value in (("consumer", consumer), ("dead_letter", dead_letter)):
            if value is None and name == "dead_letter":
                continue
            if not isinstance(value, str) or not value or " " in value:
                raise TypeError(f"{name} must be a NATS name without spaces, got {value!r}")
        for name, flag in (("ignore_other_consumers", ignore_other_consumers),
                           ("terminated", terminated), ("dry_run", dry_run)):  # fmt: skip
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        self.connection = connection
        self.stream, self.consumer, self.dead_letter = stream, consumer, dead_letter
        self.terminated, self.dry_run = terminated, dry_run
        self.interval: float = positive("interval", interval)
        self.timeout: float = positive("timeout", timeout)
        self.sample: int = positive("sample", sample, integer=True)
        self.registry = registry or default_registry
        self.adapter = JetStreamAdapter(ignore_other_consumers=ignore_other_consumers)
        self._client: Client | None = connection if isinstance(connection, Client) else None
        self._opened: contextlib.AbstractAsyncContextManager[Client] | None = None

    def __repr__(self) -> str:
        return f"JetStreamReaper(stream={self.stream!r}, consumer={self.consumer!r})"

    async def _open(self) -> None:
        if self._client is None and isinstance(self.connection, str):
            self._opened = self.adapter.connect(self.connection)
            self._client = await self._opened.__aenter__()

    async def _close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            self._client = None
            await opened.__aexit__(None, None, None)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[Client]:
        if self._client is not None:
            yield self._client
            return
        async with self.adapter.connect(str(self.connection)) as client:
            yield client

    async def _run(self) -> None:
        client = self._client
        assert client is not None  # _open connected it
        queue: asyncio.Queue[_Dead] = asyncio.Queue()

        async def on_advisory(msg: Any) -> None:
            try:
                event = json.loads(msg.data)
                seq, deliveries = int(event["stream_seq"]), int(event.get("deliveries") or 0)
            except (ValueError, KeyError, TypeError):
                return
            reason = "terminated" if msg.subject.startswith(TERMINATED) else "max_deliveries"
            queue.put_nowait((seq, deliveries, reason, None))

        subjects = [MAX_DELIVERIES] + ([TERMINATED] if self.terminated else [])
        subscriptions = [
            await client.subscribe(f"{s}.{self.stream}.{self.consumer}", cb=on_advisory)
            for s in subjects
        ]
        try:
            await client.flush(max(1, int(self.timeout)))  # listening before recovery
            recovered, recover_at = False, 0.0
            while True:
                now = time.monotonic()
                if not recovered and now >= recover_at:
                    report = await self.sweep()
                    self._reported(report)
                    recovered = report.complete and not report.failed
                    recover_at = now + self.interval
                try:
                    first = await asyncio.wait_for(queue.get(), self.interval)
                except asyncio.TimeoutError:
                    continue
                batch = [first]
                while not queue.empty() and len(batch) < 100:
                    batch.append(queue.get_nowait())
                tally = Tally(self.stream, self.consumer, self.dry_run, self.sample)
                tally.scanned = tally.dead = len(batch)
                await self._reap(client, batch, tally)
                self._reported(tally.report())
        finally:
            for subscription in subscriptions:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()

    async def sweep(self, *, progress: Callable[[int], None] | None = None) -> SweepReport:
        """Recover what advisories were missed: reap the messages the consumer's state shows
        it gave up on (work-queue streams; see the class). `complete=False` when that cannot
        be told now (a message is awaiting an acknowledgement) or a request failed: a later
        sweep tries again. Never raises for the broker's failures: they are in the report.
        `progress` is called after each batch with how many stream sequences (from the
        consumer's ack floor to its last delivery) the scan got past."""
        tally = Tally(self.stream, self.consumer, self.dry_run, self.sample)
        try:
            async with self._connected() as client:
                await self._recover(client, tally, progress)
        except MsgdelError as exc:
            tally.stop(exc)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            tally.stop(_failure(exc))
        return tally.report()

    async def _recover(
        self, client: Client, tally: Tally, progress: Callable[[int], None] | None = None
    ) -> None:
        js = client.jetstream(timeout=self.timeout)
        try:
            info = await js.consumer_info(self.stream, self.consumer)
            stream = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            raise DeletionFailed(
                f"JetStream has no consumer {self.consumer!r} of stream {self.stream!r}; "
                "nothing was reaped",
                retryable=False,
            ) from None
        retention = str(getattr(stream.config.retention, "value", stream.config.retention))
        if retention != "workqueue":
            return  # acknowledged messages stay: the state cannot tell the dead ones
        if info.num_ack_pending:
            tally.stop(
                DeletionFailed(
                    f"{info.num_ack_pending} messages of consumer {self.consumer!r} await an "
                    "acknowledgement, so the dead ones cannot be told from them yet; a later "
                    "sweep tries again (advisories are reaped meanwhile)",
                    retryable=True,
                )
            )
            return
        config = info.config
        filters = list(config.filter_subjects or ()) or (
            [config.filter_subject] if config.filter_subject else [">"]
        )
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        last = info.delivered.stream_seq if info.delivered else 0
        seq = floor + 1
        batch: list[_Dead] = []
        passed = floor  # the last sequence reported to `progress`
        while seq <= last:
            try:
                found = await js.get_msg(self.stream, seq, subject=">", next=True)
            except nats.js.errors.NotFoundError:
                break
            if found.seq is None or found.seq > last:
                break
            tally.scanned += 1
            if any(subject_matches(f, found.subject or "") for f in filters):
                batch.append((found.seq, 0, "recovered", found))
            seq = found.seq + 1
            if len(batch) >= 100:
                tally.dead += len(batch)
                await self._reap(client, batch, tally)
                batch = []
                if progress is not None:
                    progress(found.seq - passed)
                    passed = found.seq
        tally.dead += len(batch)
        if batch:
            await self._reap(client, batch, tally)
        if progress is not None and last > passed:
            progress(last - passed)

    async def _reap(self, client: Client, batch: list[_Dead], tally: Tally) -> None:
        """Copy (with `dead_letter`, `COPIES` at a time) and delete the messages of `batch`;
        count what happened. A message whose copy failed is not deleted."""
        addresses = [JetStreamSequence(self.stream, dead[0]) for dead in batch]
        if self.dry_run:
            for outcome in await msgdel.delete_at(
                client, addresses, adapter=self.adapter, dry_run=True, return_exceptions=True
            ):
                tally.add(outcome)
            return
        keep: list[JetStreamSequence] = []
        if self.dead_letter is None:
            keep = addresses
        else:
            slots = asyncio.Semaphore(COPIES)

            async def copy(dead: _Dead) -> bool:
                async with slots:
                    return await self._copy(client, *dead)

            copied = await asyncio.gather(*(copy(d) for d in batch), return_exceptions=True)
            for address, result in zip(addresses, copied):
                if isinstance(result, MsgdelError):
                    tally.add(result)  # not copied, not deleted: a later sweep retries
                elif isinstance(result, (nats.errors.Error, asyncio.TimeoutError)):
                    tally.add(_failure(result))
                elif isinstance(result, BaseException):
                    raise result
                else:  # copied (True), or gone already (False): delete_at says which
                    tally.dead_lettered += result
                    keep.append(address)
        if not keep:
            return
        for outcome in await msgdel.delete_at(
            client, keep, adapter=self.adapter, registry=self.registry, return_exceptions=True
        ):
            tally.add(outcome)

    async def _copy(
        self, client: Client, seq: int, deliveries: int, reason: str, original: Any = None
    ) -> bool:
        """Publish the message at `seq` (fetched now, unless `original` is it) to the
        dead-letter subject and wait until JetStream stored it; False when the message is
        gone already (nothing to copy)."""
        js = client.jetstream(timeout=self.timeout)
        if original is None:
            try:
                original = await js.get_msg(self.stream, seq)
            except nats.js.errors.NotFoundError:
                return False
        headers = {k: v for k, v in (original.headers or {}).items() if k != "Nats-Msg-Id"}
        headers.update({
            ORIGIN_STREAM: self.stream, ORIGIN_SEQUENCE: str(seq),
            ORIGIN_SUBJECT: original.subject or "", ORIGIN_CONSUMER: self.consumer,
            DELIVERIES: str(deliveries) if deliveries else "", REASON: reason,
            "Nats-Msg-Id": f"msgdel-dead-letter:{self.stream}:{seq}",
        })  # fmt: skip
        if not deliveries:
            del headers[DELIVERIES]
        assert self.dead_letter is not None
        try:
            await js.publish(self.dead_letter, original.data or b"", headers=headers)
        except (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError):
            raise DeletionFailed(
                f"no JetStream stream captures the dead-letter subject {self.dead_letter!r}: "
                f"message {self.stream}:{seq} was not copied, and not deleted",
                retryable=False,
            ) from None
        return True


def _failure(exc: BaseException) -> DeletionFailed:
    return DeletionFailed(
        f"NATS could not be reached or did not answer ({redact(repr(exc))}); every message is "
        "where it was, or reaped: reaping again is safe",
        retryable=True,
    )
