"""FastStream integration: a middleware that deletes handled messages, and a handler dependency.

```python
from faststream.redis import RedisBroker
from msgdel.faststream import DeleteMiddleware, Deleter

broker = RedisBroker(url, middlewares=[DeleteMiddleware()])

@broker.subscriber("orders")
async def handle(body: dict, delete: Deleter) -> None:
    ...  # or: await delete() to delete the message here and now
```

Works with FastStream 0.6 and 0.7 and every broker that has a msgdel adapter.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from faststream import BaseMiddleware, Context, Depends
from faststream.exceptions import AckMessage, NackMessage, RejectMessage

from msgdel import _check, _dispatch
from msgdel.api import delete
from msgdel.batcher import Batcher
from msgdel.compat import (
    bind_to_subscriber,
    claims_pending,
    is_acknowledged,
    is_handler_delivery,
    is_refused,
    leave_acknowledgement_to_batch,
    manual_ack,
    running_subscriber,
    unwatch_refusal,
    watch_refusal,
)
from msgdel.errors import MsgdelError, NotDeletable, UnsupportedDeletion
from msgdel.registry import Registry
from msgdel.semantics import Semantics

if TYPE_CHECKING:
    from types import TracebackType

    from faststream.message import StreamMessage
    from prometheus_client import CollectorRegistry

    from msgdel.result import DeleteResult

__all__ = ["DeleteFunction", "DeleteMiddleware", "Deleter", "deleter"]

log = logging.getLogger("msgdel.faststream")

When = Literal["success", "always"]
OnError = Literal["log", "raise"]
_WHEN = ("success", "always")
_ON_ERROR = ("log", "raise")


class DeleteMiddleware:
    """Deletes each message its handler has finished with, as FastStream would settle it.

    A message is deleted only once FastStream itself would settle it as done: the handler
    returned (or raised `AckMessage`), FastStream published its result (`@publisher`,
    `reply_to`) without error, and neither the handler nor the ack policy settled it
    otherwise. A message the handler nacked or rejected is never deleted; under
    `AckPolicy.MANUAL` only a message the handler acknowledged is; a message the handler
    deleted itself (`msgdel.delete`, `Deleter`, a `Batcher`) is not deleted twice; and
    a message read by `subscriber.get_one()` or `async for` is left alone. With
    `when="always"` a handler that raised has its message deleted too, unless it nacked or
    rejected it. A handler cancelled by shutdown never has its message deleted.

    Without a `batcher` (or once it is closed) the message is deleted before FastStream's
    own acknowledgement runs; with one, it is submitted and the handler does not wait for the
    broker. FastStream still acknowledges a batched message itself, so no other consumer can
    claim it before its batch is sent. `leave_ack_to_batch=True` skips that acknowledgement
    where the batch acknowledges anyway (`features.acknowledges`: Redis streams), one round
    trip per message fewer, at the price that until the batch is sent the entry stays pending
    and a consumer claiming idle entries (`XAUTOCLAIM`) could take it: it is never applied to
    a subscriber that claims (`min_idle_time`).

    A failed deletion is logged on the `msgdel.faststream` logger and the handler's result
    stands (`on_error="log"`); `on_error="raise"` re-raises it into FastStream, which then
    applies its error policy (nack/reject). Deleting never settles a message twice: adapters
    settle through FastStream's own message object.

    `metrics=True` (or a prometheus-client `CollectorRegistry`) counts the deletions in
    Prometheus and tracks the batcher's gauges:
    [`msgdel.prometheus.instrument`][msgdel.prometheus.instrument].

    Pass an instance where FastStream takes middlewares: `RedisBroker(...,
    middlewares=[DeleteMiddleware()])`, `RabbitRouter(middlewares=[...])`, etc.
    """

    def __init__(
        self,
        when: When = "success",
        batcher: Batcher | None = None,
        registry: Registry | None = None,
        *,
        require: Semantics | None = None,
        on_error: OnError = "log",
        leave_ack_to_batch: bool = False,
        metrics: bool | CollectorRegistry = False,
    ) -> None:
        if when not in _WHEN:
            raise ValueError(
                f"when must be 'success' (delete after the handler returns) or 'always' "
                f"(also after it raises), got {when!r}"
            )
        if on_error not in _ON_ERROR:
            raise ValueError(f"on_error must be 'log' or 'raise', got {on_error!r}")
        if batcher is not None and not isinstance(batcher, Batcher):
            raise TypeError(f"batcher must be a msgdel.Batcher or None, got {batcher!r}")
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
        if batcher is not None and registry is not None and batcher.registry is not registry:
            raise ValueError(
                "pass the registry to the Batcher (Batcher(registry)) and not to "
                "DeleteMiddleware as well: the batcher resolves the adapters"
            )
        self.require = _dispatch.check_require(require)
        _check.flag("leave_ack_to_batch", leave_ack_to_batch)
        if leave_ack_to_batch and batcher is None:
            raise ValueError(
                "leave_ack_to_batch=True needs a batcher: DeleteMiddleware(batcher=Batcher(), ...)"
            )
        self.when: When = when
        self.batcher = batcher
        self.registry = registry
        self.on_error: OnError = on_error
        self.leave_ack_to_batch = leave_ack_to_batch
        self._subscribers: weakref.WeakKeyDictionary[Any, _Subscriber] = (
            weakref.WeakKeyDictionary()
        )  # held weakly: a middleware shared by brokers that come and go keeps none of them
        if metrics is not False:  # the msgdel[prometheus] extra
            from msgdel.prometheus import instrument_middleware

            instrument_middleware(registry, batcher, metrics)

    def __call__(self, msg: Any, /, *, context: Any = None, **kwargs: Any) -> BaseMiddleware:
        """Build the per-message middleware (FastStream calls this for every message)."""
        if context is None:  # FastStream 0.6 early releases passed no context
            return _DeleteScope(msg, settings=self, **kwargs)
        return _DeleteScope(msg, settings=self, context=context, **kwargs)

    def should_delete(
        self, handling: _dispatch.Handling, subscriber: Any, error: BaseException | None
    ) -> bool:
        """Whether the handled message is to be deleted, after the handler (and FastStream's
        publishing of its result) ended with `error`."""
        message = handling.message
        if handling.requested or handling.refused or is_refused(message):
            return False  # deleted by the handler itself; or nacked/rejected: to be redelivered
        if self._facts(subscriber).manual and not is_acknowledged(message):
            return False  # AckPolicy.MANUAL: only what the handler acknowledged is done
        if error is None or isinstance(error, AckMessage):
            return True
        if isinstance(error, (NackMessage, RejectMessage, asyncio.CancelledError)):
            return False
        return self.when == "always"

    async def delete(
        self, message: StreamMessage[Any], context: Any = None, subscriber: Any = None
    ) -> None:
        """Delete (or submit) `message` according to this middleware's settings."""
        bind_to_subscriber(message, context)
        try:
            batcher = self.batcher
            if batcher is not None and not batcher.closed:
                adapter = await batcher._queue(message, _log_failure)
                if (
                    self.leave_ack_to_batch
                    and adapter.features.acknowledges
                    and not self._facts(subscriber).claims
                ):
                    # The queued deletion acknowledges the message too (a Redis stream entry
                    # in a group: XACKDEL): FastStream need not send an XACK of its own.
                    leave_acknowledgement_to_batch(message)
            else:  # no batcher, or it was closed at shutdown while handlers still run
                registry = batcher.registry if batcher is not None else self.registry
                await delete(message, registry=registry, require=self.require)
        except (NotDeletable, UnsupportedDeletion) as exc:
            if self.on_error == "raise":
                raise
            # Nothing stored to delete here (a requeued delivery, a broker that cannot
            # delete this kind of message): not an error of the handler's.
            log.debug("msgdel left the handled message alone: %s", exc)
        except MsgdelError as exc:
            if self.on_error == "raise":
                raise
            log.error("msgdel could not delete the handled message: %s", exc, exc_info=exc)

    def _facts(self, subscriber: Any) -> _Subscriber:
        """What this middleware needs to know of `subscriber`, read once per subscriber (its
        acknowledgement policy and claiming are fixed when it is created)."""
        try:
            facts = self._subscribers.get(subscriber)
            if facts is None:
                facts = self._subscribers[subscriber] = _Subscriber(subscriber)
        except TypeError:  # a subscriber that cannot be held weakly: read it every time
            facts = _Subscriber(subscriber)
        return facts

    def __repr__(self) -> str:
        return f"DeleteMiddleware(when={self.when!r}, batcher={self.batcher!r})"


class _Subscriber:
    """A subscriber the middleware has seen, and the facts it reads of it per message."""

    __slots__ = ("claims", "manual")

    def __init__(self, subscriber: Any) -> None:
        self.manual = manual_ack(subscriber)
        self.claims = claims_pending(subscriber)


class _DeleteScope(BaseMiddleware):  # type: ignore[misc]
    """The middleware FastStream enters for one incoming message.

    `consume_scope` wraps the handler and learns which message it handles; the deletion
    happens in `after_processed`, which FastStream runs after it has published the
    handler's result and before its own acknowledgement (the outermost middleware).
    """

    def __init__(self, msg: Any, /, *, settings: DeleteMiddleware, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self._settings = settings
        self._handling: _dispatch.Handling | None = None
        self._subscriber: Any = None

    async def consume_scope(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        context = getattr(self, "context", None)
        if not is_handler_delivery(msg, context):  # get_one() or async for: not ours
            return await call_next(msg)
        self._handling = handling = _dispatch.Handling(msg)
        watch_refusal(msg, handling.refuse)
        self._subscriber = running_subscriber(context)
        token = _dispatch.handling.set(handling)
        try:
            return await call_next(msg)
        finally:
            _dispatch.handling.reset(token)
            unwatch_refusal(msg)

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        handling, settings = self._handling, self._settings
        if handling is not None and settings.should_delete(handling, self._subscriber, exc_val):
            await settings.delete(
                handling.message, getattr(self, "context", None), self._subscriber
            )
        return False


def _log_failure(message: StreamMessage[Any], exc: MsgdelError) -> None:
    """Log a batched deletion that failed for good, naming the message so it can be found."""
    if isinstance(exc, (NotDeletable, UnsupportedDeletion)):
        log.debug("msgdel left a handled message alone: %s", exc)
    else:
        log.error(
            "msgdel could not delete a handled message (message_id=%s): %s",
            getattr(message, "message_id", None),
            exc,
            exc_info=exc,
            extra={"message_id": getattr(message, "message_id", None)},
        )


class DeleteFunction(Protocol):
    """Deletes the message being handled: `await delete()` returns its DeleteResult."""

    async def __call__(self, *, require: Semantics | None = None) -> DeleteResult: ...


def deleter(
    registry: Registry | None = None, batcher: Batcher | None = None
) -> Callable[..., DeleteFunction]:
    """A FastStream dependency giving a handler a delete function bound to its message.

    ```python
    MyDeleter = Annotated[DeleteFunction, Depends(deleter(registry=my_registry), cast=False)]
    ```
    """

    def provide(
        message: Any = Context("message"),  # noqa: B008
        context: Any = Context(),  # noqa: B008
    ) -> DeleteFunction:
        bind_to_subscriber(message, context)

        async def delete_current(*, require: Semantics | None = None) -> DeleteResult:
            if batcher is not None:
                _dispatch.resolve(_dispatch.registry_of(batcher.registry), message, require)
                return await batcher.delete(message)
            result: DeleteResult = await delete(message, registry=registry, require=require)
            return result

        return delete_current

    return provide


Deleter = Annotated[DeleteFunction, Depends(deleter(), cast=False)]
"""Declare `delete: Deleter` in a handler to get `await delete()` for its message."""
