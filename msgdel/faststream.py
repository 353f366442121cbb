"""FastStream integration: a middleware that deletes handled messages, and a handler dependency.

.. code-block:: python

    from faststream.redis import RedisBroker
    from msgdel.faststream import DeleteMiddleware, Deleter

    broker = RedisBroker(url, middlewares=[DeleteMiddleware()])

    @broker.subscriber("orders")
    async def handle(body: dict, delete: Deleter) -> None:
        ...  # or: await delete() to delete the message here and now

Works with FastStream 0.6 and 0.7 and every broker that has a msgdel adapter.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from faststream import BaseMiddleware, Context, Depends
from faststream.exceptions import AckMessage

from msgdel import _dispatch
from msgdel.api import delete
from msgdel.batcher import Batcher
from msgdel.compat import bind_to_subscriber, mark_settled
from msgdel.errors import MsgdelError
from msgdel.registry import Registry
from msgdel.semantics import Semantics

if TYPE_CHECKING:
    from faststream.message import StreamMessage

    from msgdel.result import DeleteResult

__all__ = ["DeleteFunction", "DeleteMiddleware", "Deleter", "deleter"]

log = logging.getLogger("msgdel.faststream")

When = Literal["success", "always"]
OnError = Literal["log", "raise"]
_WHEN = ("success", "always")
_ON_ERROR = ("log", "raise")


class DeleteMiddleware:
    """Deletes every message its handler has processed, before FastStream acknowledges it.

    ``when="success"`` deletes after the handler returns (or raises ``AckMessage``);
    ``when="always"`` also after it raises any other exception. A handler that is cancelled
    (shutdown) never has its message deleted. With a ``batcher`` the deletion is submitted
    and the handler does not wait for the broker; without one (or once the batcher is
    closed), each message is deleted before FastStream's own acknowledgement runs. Where the
    deletion acknowledges too (``features.acknowledges``: Redis streams), a
    submitted message is marked acknowledged and FastStream sends no acknowledgement of its
    own; if the deletion then fails, the message stays unacknowledged at the broker.

    A failed deletion is logged on the ``msgdel.faststream`` logger and the handler's result
    stands (``on_error="log"``); ``on_error="raise"`` re-raises it into FastStream, which then
    applies its error policy (nack/reject). Deleting never settles a message twice: adapters
    settle through FastStream's own message object.

    Pass an instance where FastStream takes middlewares: ``RedisBroker(...,
    middlewares=[DeleteMiddleware()])``, ``RabbitRouter(middlewares=[...])``, etc.
    """

    def __init__(
        self,
        when: When = "success",
        batcher: Batcher | None = None,
        registry: Registry | None = None,
        *,
        require: Semantics | None = None,
        on_error: OnError = "log",
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
        if require is not None and not isinstance(require, Semantics):
            raise TypeError(f"require must be a msgdel.Semantics or None, got {require!r}")
        self.when: When = when
        self.batcher = batcher
        self.registry = registry
        self.require = require
        self.on_error: OnError = on_error

    def __call__(self, msg: Any, /, *, context: Any = None, **kwargs: Any) -> BaseMiddleware:
        """Build the per-message middleware (FastStream calls this for every message)."""
        if context is None:  # FastStream 0.6 early releases passed no context
            return _DeleteScope(msg, settings=self, **kwargs)
        return _DeleteScope(msg, settings=self, context=context, **kwargs)

    async def delete(self, message: StreamMessage[Any], context: Any = None) -> None:
        """Delete (or submit) ``message`` according to this middleware's settings."""
        bind_to_subscriber(message, context)
        try:
            batcher = self.batcher
            if batcher is not None and not batcher.closed:
                future = await batcher.submit(message)
                future.add_done_callback(_log_failure)
                _leave_acknowledgement_to_batch(message, batcher)
            else:  # no batcher, or it was closed at shutdown while handlers still run
                registry = batcher.registry if batcher is not None else self.registry
                await delete(message, registry=registry, require=self.require)
        except MsgdelError as exc:
            if self.on_error == "raise":
                raise
            log.error("msgdel could not delete the handled message: %s", exc, exc_info=exc)

    def __repr__(self) -> str:
        return f"DeleteMiddleware(when={self.when!r}, batcher={self.batcher!r})"


class _DeleteScope(BaseMiddleware):  # type: ignore[misc]
    """The middleware FastStream enters for one incoming message."""

    def __init__(self, msg: Any, /, *, settings: DeleteMiddleware, **kwargs: Any) -> None:
        super().__init__(msg, **kwargs)
        self._settings = settings

    async def consume_scope(
        self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        settings, context = self._settings, getattr(self, "context", None)
        try:
            result = await call_next(msg)
        except AckMessage:
            await settings.delete(msg, context)
            raise
        except Exception:
            if settings.when == "always":
                await settings.delete(msg, context)
            raise
        await settings.delete(msg, context)
        return result


def _leave_acknowledgement_to_batch(message: Any, batcher: Batcher) -> None:
    """When the queued deletion acknowledges the message too (a Redis stream entry in a
    group: XACKDEL), mark it acknowledged so FastStream sends no XACK of its own.

    One round trip per message fewer; and should the deletion fail, the entry stays pending
    in its group (redelivered by XAUTOCLAIM) instead of acknowledged but left in the stream.
    """
    adapter = _dispatch.registry_of(batcher.registry).resolve(type(message))
    if adapter.features.acknowledges:
        mark_settled(message)


def _log_failure(future: asyncio.Future[DeleteResult]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.error("msgdel could not delete a handled message: %s", exc, exc_info=exc)


class DeleteFunction(Protocol):
    """Deletes the message being handled: ``await delete()`` returns its DeleteResult."""

    async def __call__(self, *, require: Semantics | None = None) -> DeleteResult: ...


def deleter(
    registry: Registry | None = None, batcher: Batcher | None = None
) -> Callable[..., DeleteFunction]:
    """A FastStream dependency giving a handler a delete function bound to its message.

    .. code-block:: python

        MyDeleter = Annotated[DeleteFunction, Depends(deleter(registry=my_registry))]
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
            return await delete(message, registry=registry, require=require)

        return delete_current

    return provide


Deleter = Annotated[DeleteFunction, Depends(deleter(), cast=False)]
"""Declare ``delete: Deleter`` in a handler to get ``await delete()`` for its message."""
