"""RabbitMQ: delete a consumed message by settling its delivery through FastStream.

On RabbitMQ a consumed message leaves its queue when its delivery is settled: ``ack`` removes
it, ``reject(requeue=False)`` removes it and hands it to the queue's dead-letter exchange if
one is configured. The adapter settles through the FastStream message object, so FastStream's
own acknowledgement after the handler becomes a no-op and the channel stays open (a second
``basic.ack`` for the same delivery tag would make the broker close the channel).

Imports only aio-pika (and aiormq, which it is built on) besides FastStream.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from faststream.message import AckStatus, StreamMessage

from msgdel.compat import clear_settled, is_nacked, is_settled, is_test_double, mark_settled
from msgdel.errors import DeletionFailed, NotDeletable, UnsupportedDeletion
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

if TYPE_CHECKING:
    from aio_pika import IncomingMessage
    from faststream.rabbit.message import RabbitMessage

__all__ = ["RabbitAdapter"]

BROKER = "rabbit"
STREAM_OFFSET_HEADER = "x-stream-offset"
LEDGER_LIMIT = 100_000
"""Most out-of-order settled tags remembered per channel before its ledger starts over."""

_CLOSED_CHANNEL = (
    "the channel this message was delivered on is closed, so its delivery can no longer be "
    "settled; RabbitMQ has put the message back and will redeliver it: delete the "
    "redelivered message instead"
)


class _Ledger:
    """Which delivery tags of one channel are known settled.

    ``floor``: every tag up to it is settled. ``above``: settled tags beyond the floor.
    Only tags this adapter settled or saw settled are recorded, so a tag FastStream acked on
    its own keeps the floor below it and ``ack(multiple=True)`` is never used across it.
    """

    __slots__ = ("above", "floor")

    def __init__(self) -> None:
        self.floor = 0
        self.above: set[int] = set()

    def record(self, tags: Sequence[int]) -> None:
        self.above.update(t for t in tags if t > self.floor)
        while self.floor + 1 in self.above:
            self.floor += 1
            self.above.discard(self.floor)
        if len(self.above) > LEDGER_LIMIT:  # a gap that never fills: bound the memory
            self.above.clear()


class RabbitAdapter(BaseAdapter):
    """Deletes consumed RabbitMQ messages (``faststream.rabbit.message.RabbitMessage``).

    ``dead_letter=False``: acknowledge, the message is gone. ``dead_letter=True``: reject
    without requeue, so the queue's dead-letter exchange (if any) receives it.

    Outcomes: ``DELETED`` when this call settled the delivery; ``ALREADY_GONE`` when it was
    settled before (acked, rejected, consumed without acknowledgement); ``SKIPPED`` for
    messages of FastStream's in-memory ``TestRabbitBroker``. Errors: ``NotDeletable`` for a
    delivery nacked with requeue (the broker holds a new delivery now);
    ``UnsupportedDeletion`` for stream queues; ``DeletionFailed`` (not retryable) when the
    delivery's channel is closed.
    """

    features = Features(BROKER, Semantics.EXACT)

    def __init__(self, dead_letter: bool = False) -> None:
        self.dead_letter = dead_letter
        self._ledgers: weakref.WeakKeyDictionary[Any, _Ledger] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RabbitAdapter(dead_letter={self.dead_letter})"

    # -- one message -----------------------------------------------------------------------
    async def delete(self, message: RabbitMessage, /) -> DeleteResult:
        """Settle ``message``'s delivery (ack, or reject without requeue) and say what happened.

        Nothing is sent when the result is ``ALREADY_GONE`` or ``SKIPPED`` or when an error is
        raised before settling.
        """
        raw = message.raw_message
        early = self._check(message)
        if early is not None:
            return early
        try:
            if self.dead_letter:
                await message.reject(requeue=False)
            else:
                await message.ack()
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            clear_settled(message)
            raise _failed(raw, exc) from exc
        self._ledger(raw).record([_tag(message)])
        return self._result(message, Outcome.DELETED, removed=1)

    # -- a batch ---------------------------------------------------------------------------
    async def delete_many(self, messages: Sequence[RabbitMessage], /) -> list[DeleteResult]:
        """Settle every message's delivery; results in input order.

        Every message is checked before anything is sent, so a message that cannot be
        deleted (nacked with requeue, stream queue, closed channel) raises before any
        delivery is settled. Per channel, a run of deliveries whose tags follow the last tag
        known settled is settled with one ``multiple=True`` frame; the rest one by one.
        """
        results: list[DeleteResult | None] = [None] * len(messages)
        pending: dict[int, list[int]] = {}  # id(channel) -> indexes of messages to settle
        channels: dict[int, Any] = {}
        seen: set[int] = set()
        for index, message in enumerate(messages):
            raw = message.raw_message
            if id(raw) in seen:  # the same delivery twice: the first settles it
                results[index] = self._result(message, Outcome.ALREADY_GONE)
                continue
            seen.add(id(raw))
            early = self._check(message)
            if early is not None:
                results[index] = early
                continue
            channel = _channel_of(raw)
            channels[id(channel)] = channel
            pending.setdefault(id(channel), []).append(index)

        names: dict[tuple[int, str | None, str | None, str | None], str] = {}
        for key, indexes in pending.items():
            await self._settle_channel(channels[key], [messages[i] for i in indexes])
            for i in indexes:
                results[i] = self._result(messages[i], Outcome.DELETED, removed=1, names=names)
        return [r for r in results if r is not None]

    async def _settle_channel(self, channel: Any, batch: list[RabbitMessage]) -> None:
        ledger = self._ledger_for(channel)
        batch = sorted(batch, key=_tag)
        # The run: the lowest tags of the batch that, together with tags already known
        # settled, follow the ledger's floor without a gap. Acking the run's last tag with
        # multiple=True then settles exactly the run: nothing outstanding lies below it.
        run, tag = 0, ledger.floor + 1
        while run < len(batch):
            if _tag(batch[run]) == tag:
                run += 1
            elif tag not in ledger.above:
                break
            tag += 1
        try:
            if run > 1:
                last = batch[run - 1].raw_message
                if self.dead_letter:
                    await last.nack(multiple=True, requeue=False)
                else:
                    await last.ack(multiple=True)
                status = AckStatus.REJECTED if self.dead_letter else AckStatus.ACKED
                for message in batch[:run]:
                    _mark_settled(message, status)
                ledger.record([_tag(m) for m in batch[:run]])
                rest = batch[run:]
            else:
                rest = batch
            for message in rest:
                if self.dead_letter:
                    await message.reject(requeue=False)
                else:
                    await message.ack()
                ledger.record([_tag(message)])
        except (AMQPError, ChannelInvalidStateError, ConnectionError) as exc:
            raise _failed(batch[0].raw_message, exc) from exc

    # -- shared ------------------------------------------------------------------------------
    def _check(self, message: RabbitMessage) -> DeleteResult | None:
        """A result when nothing is to be sent; raises when the message cannot be deleted."""
        raw = message.raw_message
        if is_test_double(raw):
            return self._result(message, Outcome.SKIPPED)
        if STREAM_OFFSET_HEADER in (raw.headers or {}):
            raise UnsupportedDeletion(
                f"message {raw.delivery_tag} of queue {_queue_name(raw)!r} comes from a stream "
                "queue (x-queue-type: stream): streams never delete single messages, they only "
                "expire by retention (x-max-age, x-max-length-bytes); acknowledging it only "
                "moves the consumer on"
            )
        if is_nacked(message):
            raise NotDeletable(
                f"message {raw.delivery_tag} of queue {_queue_name(raw)!r} was nacked: with "
                "requeue (FastStream's default) the broker holds it as a new delivery now, "
                "so delete that redelivered message instead"
            )
        if is_settled(message) or raw.locked or raw.processed:
            self._ledger(raw).record([raw.delivery_tag] if raw.delivery_tag else [])
            return self._result(message, Outcome.ALREADY_GONE)
        try:
            raw.channel  # noqa: B018 - raises when the channel is closed
        except ChannelInvalidStateError as exc:
            raise _failed(raw, exc) from exc
        return None

    def _result(
        self,
        message: RabbitMessage,
        outcome: Outcome,
        removed: int = 0,
        names: dict[tuple[int, str | None, str | None, str | None], str] | None = None,
    ) -> DeleteResult:
        """The result for ``message``; ``names`` caches queue names within one batch."""
        raw = message.raw_message
        ident = raw.delivery_tag if raw.delivery_tag else message.message_id
        if names is None:
            target = _queue_name(raw)
        else:
            key = (id(_channel_of(raw)), raw.consumer_tag, raw.exchange, raw.routing_key)
            target = names.get(key) or names.setdefault(key, _queue_name(raw))
        return DeleteResult(
            broker=BROKER,
            target=target,
            ids=(str(ident),),
            semantics=self.semantics,
            outcome=outcome,
            removed=removed,
        )

    def _ledger(self, raw: IncomingMessage) -> _Ledger:
        return self._ledger_for(_channel_of(raw))

    def _ledger_for(self, channel: Any) -> _Ledger:
        try:
            ledger = self._ledgers.get(channel)
            if ledger is None:
                ledger = self._ledgers[channel] = _Ledger()
        except TypeError:  # a channel object without weak references: track nothing
            return _Ledger()
        return ledger


def _tag(message: RabbitMessage) -> int:
    """The delivery tag (0 for a delivery without one, which is settled at delivery)."""
    return int(message.raw_message.delivery_tag or 0)


def _mark_settled(message: StreamMessage[Any], status: AckStatus) -> None:
    """Record a delivery settled by a ``multiple=True`` frame sent through another message,
    so that FastStream's later ack (and aio-pika's own checks) send nothing for it."""
    mark_settled(message, status)
    raw = message.raw_message
    if not raw.locked:
        raw.lock()
    if hasattr(raw, "_IncomingMessage__processed"):
        raw._IncomingMessage__processed = True


def _channel_of(raw: IncomingMessage) -> Any:
    """The aiormq channel the delivery came on, even when it is closed."""
    return getattr(raw, "_IncomingMessage__channel", None)


def _queue_name(raw: IncomingMessage) -> str:
    """The queue the delivery came from.

    Found through the consumer that received it (the FastStream subscriber's declared
    queue); else the routing key when the message went through the default exchange (which
    routes by queue name); else ``"<exchange>/<routing key>"``.
    """
    subscriber = _consumer_owner(raw)
    for candidate in (
        getattr(getattr(subscriber, "_queue_obj", None), "name", None),
        getattr(getattr(subscriber, "queue", None), "name", None),
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    if not raw.exchange:
        return raw.routing_key or ""
    return f"{raw.exchange}/{raw.routing_key or ''}"


def _consumer_owner(raw: IncomingMessage) -> Any:
    """The object whose bound method consumes ``raw``'s consumer tag, if it can be found."""
    consumers = getattr(_channel_of(raw), "consumers", None)
    if not raw.consumer_tag or not isinstance(consumers, dict):
        return None
    callback: Any = consumers.get(raw.consumer_tag)
    for _ in range(8):  # unwrap aiormq's/aio-pika's wrappers and partials
        if isinstance(callback, functools.partial):
            callback = callback.args[0] if callback.args else callback.func
        elif hasattr(callback, "__wrapped__"):
            callback = callback.__wrapped__
        else:
            break
    return getattr(callback, "__self__", None)


def _failed(raw: IncomingMessage, exc: BaseException) -> DeletionFailed:
    closed = isinstance(exc, ChannelInvalidStateError) or _is_closed(raw)
    reason = _CLOSED_CHANNEL if closed else f"the broker connection failed ({exc!r})"
    return DeletionFailed(
        f"could not delete message {raw.delivery_tag} of queue {_queue_name(raw)!r}: {reason}",
        retryable=False,
        cause=exc,
    )


def _is_closed(raw: IncomingMessage) -> bool:
    return bool(getattr(_channel_of(raw), "is_closed", False))
