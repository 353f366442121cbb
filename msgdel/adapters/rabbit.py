"""RabbitMQ: delete a consumed message by settling its delivery through FastStream.

On RabbitMQ a consumed message leaves its queue when its delivery is settled: `ack` removes
it, `reject(requeue=False)` removes it and hands it to the queue's dead-letter exchange if
one is configured. The adapter settles through the FastStream message object, so FastStream's
own acknowledgement after the handler becomes a no-op and the channel stays open (a second
`basic.ack` for the same delivery tag would make the broker close the channel).

Imports only aio-pika (and aiormq, which it is built on) besides FastStream.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from faststream.message import AckStatus, StreamMessage

try:
    from aio_pika.abc import AbstractIncomingMessage
    from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("rabbit") from exc

from msgdel import _check
from msgdel.compat import clear_settled, is_nacked, is_settled, is_test_double, mark_settled
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion
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
QUEUE_TYPE_ARGUMENT = "x-queue-type"
STREAM_QUEUE_TYPE = "stream"
LEDGER_LIMIT = 100_000
"""Most out-of-order settled tags remembered per channel before its ledger starts over."""

_SETTLE_ERRORS = (AMQPError, ChannelInvalidStateError, ConnectionError)
"""What settling raises when the channel or the connection is gone."""

_CLOSED_CHANNEL = (
    "the channel this message was delivered on is closed, so its delivery can no longer be "
    "settled; RabbitMQ has put the message back and will redeliver it: delete the "
    "redelivered message instead"
)


class _Ledger:
    """Which delivery tags of one channel are known settled.

    `floor`: every tag up to it is settled. `above`: settled tags beyond the floor.
    Only tags this adapter settled or saw settled are recorded, so a tag FastStream acked on
    its own keeps the floor below it and `ack(multiple=True)` is never used across it.
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
    """Deletes consumed RabbitMQ messages (`faststream.rabbit.message.RabbitMessage`).

    `dead_letter=False`: acknowledge, the message is gone. `dead_letter=True`: reject
    without requeue, so the queue's dead-letter exchange (if any) receives it.

    Outcomes: `DELETED` when this call settled the delivery; `ALREADY_GONE` when it was
    settled before (acked, rejected, consumed without acknowledgement); `SKIPPED` for
    messages of FastStream's in-memory `TestRabbitBroker`. Errors, each for its own
    message of a batch: `NotDeletable` for a delivery nacked with requeue (the broker holds
    a new delivery now) and for a message no broker delivered; `UnsupportedDeletion` for
    stream queues (the queue type the subscriber declared); `DeletionFailed` (not
    retryable) when the delivery's channel is closed.
    """

    features = Features(BROKER, Semantics.EXACT, coalesces=False)
    """`coalesces=False`: a batch's deliveries that follow the channel's settled tags
    without a gap are settled with one `multiple=True` frame, any other delivery with a
    frame of its own (a frame that settled more would settle deliveries not asked for).
    Settling frames get no answer from the broker, so they are frames, not round trips."""

    def __init__(self, dead_letter: bool = False) -> None:
        self.dead_letter = _check.flag("dead_letter", dead_letter)
        self._ledgers: weakref.WeakKeyDictionary[Any, _Ledger] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"RabbitAdapter(dead_letter={self.dead_letter})"

    # -- a batch ---------------------------------------------------------------------------
    async def delete_many(
        self, messages: Sequence[RabbitMessage], /
    ) -> list[DeleteResult | MsgdelError]:
        """Settle every message's delivery: one result or error per message, in input order.

        A message that cannot be deleted (no delivery behind it, nacked with requeue, from a
        stream queue, its channel closed) gets its own error and is not settled; the others
        still are. Per channel, a run of deliveries whose tags follow the last tag known
        settled is settled with one `multiple=True` frame, the rest one frame each, so no
        frame ever settles a delivery the batch was not given. When a channel fails while
        settling, its deliveries not settled yet get the error; other channels go on.
        """
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(messages)
        pending: dict[int, list[int]] = {}  # id(channel) -> indexes of messages to settle
        channels: dict[int, Any] = {}
        first: dict[int, int] = {}  # id(delivery) -> index of its first occurrence
        repeats: list[tuple[int, int]] = []
        for index, message in enumerate(messages):
            raw = getattr(message, "raw_message", None)
            if not isinstance(raw, AbstractIncomingMessage):
                outcomes[index] = NotDeletable(
                    f"this {type(message).__name__} holds no RabbitMQ delivery (no broker "
                    "delivered it): only a delivered message can be settled"
                )
                continue
            if id(raw) in first:  # the same delivery twice: the first settles it
                repeats.append((index, first[id(raw)]))
                continue
            first[id(raw)] = index
            try:
                early = self._check(message)
            except MsgdelError as exc:
                outcomes[index] = exc
                continue
            if early is not None:
                outcomes[index] = early
                continue
            channel = _channel_of(raw)
            channels[id(channel)] = channel
            pending.setdefault(id(channel), []).append(index)

        names: dict[tuple[int, str | None, str | None, str | None], str] = {}
        for key, indexes in pending.items():
            settled = await self._settle_channel(channels[key], [messages[i] for i in indexes])
            for i, error in zip(indexes, settled, strict=True):
                outcomes[i] = error or self._result(messages[i], Outcome.DELETED, 1, names)
        for index, earlier in repeats:
            done = outcomes[earlier]
            if isinstance(done, DeleteResult):
                skipped = done.outcome is Outcome.SKIPPED
                done = self._result(
                    messages[index], Outcome.SKIPPED if skipped else Outcome.ALREADY_GONE
                )
            outcomes[index] = done
        return [o for o in outcomes if o is not None]

    async def _settle_channel(
        self, channel: Any, batch: list[RabbitMessage]
    ) -> list[DeletionFailed | None]:
        """Settle `batch` (deliveries of `channel`): per message, None once its frame was
        sent, else the error that kept it unsettled; in `batch` order."""
        ledger = self._ledger_for(channel)
        order = sorted(range(len(batch)), key=lambda i: _tag(batch[i]))
        errors: list[DeletionFailed | None] = [None] * len(batch)
        # The run: the lowest tags of the batch that, together with tags already known
        # settled, follow the ledger's floor without a gap. Acking the run's last tag with
        # multiple=True then settles exactly the run: nothing outstanding lies below it.
        run, tag = 0, ledger.floor + 1
        while run < len(order):
            if _tag(batch[order[run]]) == tag:
                run += 1
            elif tag not in ledger.above:
                break
            tag += 1
        if run < 2:
            run = 0
        try:
            if run:
                last = batch[order[run - 1]].raw_message
                if self.dead_letter:
                    await last.nack(multiple=True, requeue=False)
                else:
                    await last.ack(multiple=True)
        except _SETTLE_ERRORS as exc:
            return [_failed(m.raw_message, exc) for m in batch]
        status = AckStatus.REJECTED if self.dead_letter else AckStatus.ACKED
        for i in order[:run]:
            _mark_settled(batch[i], status)
        ledger.record([_tag(batch[i]) for i in order[:run]])
        failure: BaseException | None = None
        for i in order[run:]:
            message = batch[i]
            if failure is None:
                try:
                    if self.dead_letter:
                        await message.reject(requeue=False)
                    else:
                        await message.ack()
                except _SETTLE_ERRORS as exc:
                    clear_settled(message)  # FastStream marked it before sending
                    failure = exc
                else:
                    ledger.record([_tag(message)])
                    continue
            errors[i] = _failed(message.raw_message, failure)
        return errors

    # -- shared ------------------------------------------------------------------------------
    def _check(self, message: RabbitMessage) -> DeleteResult | None:
        """A result when nothing is to be sent; raises when the message cannot be deleted."""
        raw = message.raw_message
        if is_test_double(raw):
            return self._result(message, Outcome.SKIPPED)
        if _from_stream(raw):
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
        """The result for `message`; `names` caches queue names within one batch."""
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
    """Record a delivery settled by a `multiple=True` frame sent through another message,
    so that FastStream's later ack (and aio-pika's own checks) send nothing for it."""
    mark_settled(message, status)
    raw = message.raw_message
    if not raw.locked:
        raw.lock()
    if hasattr(raw, "_IncomingMessage__processed"):
        raw._IncomingMessage__processed = True


def _channel_of(raw: AbstractIncomingMessage) -> Any:
    """The aiormq channel the delivery came on, even when it is closed."""
    return getattr(raw, "_IncomingMessage__channel", None)


def _queue_name(raw: IncomingMessage) -> str:
    """The queue the delivery came from.

    Found through the consumer that received it (the FastStream subscriber's declared
    queue); else the routing key when the message went through the default exchange (which
    routes by queue name); else `"<exchange>/<routing key>"`.
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


def _from_stream(raw: IncomingMessage) -> bool:
    """Whether the delivery came from a stream queue.

    The queue type the FastStream subscriber declared decides (`x-queue-type`: RabbitMQ
    refuses a declaration whose type differs from the queue's, so a declared type is the
    queue's). A header the publisher set cannot make a classic or quorum queue's message
    undeletable. Only when no declared type is known (a consumer that is not a FastStream
    subscriber, or a subscriber that connects to an existing queue with `declare=False`)
    does the `x-stream-offset` header RabbitMQ puts on every stream delivery decide.
    """
    queue = getattr(_consumer_owner(raw), "queue", None)
    arguments = getattr(queue, "arguments", None)
    if getattr(queue, "declare", False) and isinstance(arguments, Mapping):
        declared = arguments.get(QUEUE_TYPE_ARGUMENT)
        if declared is not None:
            return bool(declared == STREAM_QUEUE_TYPE)
    return STREAM_OFFSET_HEADER in (raw.headers or {})


def _consumer_owner(raw: IncomingMessage) -> Any:
    """The object whose bound method consumes `raw`'s consumer tag, if it can be found."""
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
