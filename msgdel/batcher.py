"""Collect deletions and send them in batches: one `delete_many` per adapter per flush.

```python
async with msgdel.Batcher() as batcher:
    future = await batcher.submit(msg)      # queued; waits only for back-pressure
    result = await batcher.delete(other)    # queued and awaited
# leaving the block flushed everything and waited for every result
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msgdel import _check, _dispatch
from msgdel.compat import bind_to_subscriber, remember_handler
from msgdel.errors import DeletionFailed, MsgdelError
from msgdel.protocol import Deletable
from msgdel.registry import Registry
from msgdel.semantics import Semantics

if TYPE_CHECKING:
    from types import TracebackType

    from msgdel.result import DeleteResult

__all__ = ["Batcher"]

log = logging.getLogger("msgdel.batcher")

OnFailure = Callable[[Any, MsgdelError], None]
"""What the middleware's queued deletions do with a failure: log it (there is no caller)."""

_Item = tuple[Any, Deletable, "asyncio.Future[DeleteResult] | OnFailure"]
"""A queued message, its adapter, and its future (`submit`) or failure handler (`_queue`)."""


class Batcher:
    """Batches deletions per adapter; flushes by size, by delay, on [`flush`][msgdel.Batcher.flush]
    and on close.

    Guarantees:

    - every submitted message gets its own result or exception on its future;
    - messages are grouped per adapter and sent through the adapter's `delete_many`
      (one round trip per broker target); each message gets the outcome the adapter reported
      for it, so a failing target does not fail, nor misreport, the others;
    - a message whose [`DeletionFailed`][msgdel.DeletionFailed] says `retryable=True` is retried (it
      alone, with the others still failing that way) up to `retries` times with
      exponential backoff starting at `backoff` seconds (capped at `max_backoff`): by
      default for about 33 s, so a broker restart does not exhaust it (a deletion given up
      on can be lost for good: an entry FastStream acknowledged is never delivered again);
    - at most `max_pending` messages are queued or in flight: [`submit`][msgdel.Batcher.submit]
      waits for room beyond that (back-pressure), so memory stays bounded;
    - nothing submitted is dropped on close: closing flushes and waits for every result.
      Cancelling a caller of [`delete`][msgdel.Batcher.delete] does not withdraw its deletion;
      cancelling the future returned by [`submit`][msgdel.Batcher.submit] withdraws it only if it
      was not sent yet.

    The batcher starts lazily on the running event loop; `async with` is optional but
    [`close`][msgdel.Batcher.close] (or leaving the block) must run before the loop ends.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        max_size: int = 512,
        max_delay: float = 0.005,
        max_pending: int = 10_000,
        *,
        require: Semantics | None = None,
        retries: int = 20,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        if registry is not None and not isinstance(registry, Registry):
            raise TypeError(f"registry must be a msgdel.Registry or None, got {registry!r}")
        _check.at_least("max_size", max_size, 1)
        _check.at_least("max_pending", max_pending, 1)
        _check.at_least("retries", retries, 0)
        for name, value in (("max_delay", max_delay), ("backoff", backoff),
                            ("max_backoff", max_backoff)):  # fmt: skip
            _check.seconds(name, value)
        _dispatch.check_require(require)
        self.registry = registry
        self.max_size = max_size
        self.max_delay = float(max_delay)
        self.max_pending = max_pending
        self.require = require
        self.retries = retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)

        self._buffer: list[_Item] = []
        self._timer: asyncio.TimerHandle | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._outstanding = 0
        self._room: asyncio.Event | None = None
        self._closed = False

    # -- public API ----------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Messages submitted whose result is not settled yet (queued or in flight)."""
        return self._outstanding

    @property
    def in_flight(self) -> int:
        """Flushes sent to the broker whose results are not all settled yet."""
        return len(self._inflight)

    @property
    def closed(self) -> bool:
        return self._closed

    async def submit(self, message: Any) -> asyncio.Future[DeleteResult]:
        """Queue `message` for deletion and return the future of its result.

        Waits while `max_pending` messages are outstanding, and yields to the event loop once
        when `message` fills a batch, so that batch is sent before more are queued (it does not
        wait for its result). Raises, without queueing,
        [`AdapterNotFound`][msgdel.AdapterNotFound] or
        [`UnsupportedDeletion`][msgdel.UnsupportedDeletion] when the message has no adapter or its
        adapter does not meet `require`, and `RuntimeError` after [`close`][msgdel.Batcher.close].
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DeleteResult] = loop.create_future()
        await self._put(message, future)
        return future

    async def _queue(self, message: Any, on_failure: OnFailure) -> Deletable:
        """[`submit`][msgdel.Batcher.submit] without a future, for the middleware: a failure
        that is final goes to `on_failure(message, error)`. Returns the message's adapter.
        (Per message, a future and its done callback cost more than the deletion.)"""
        return await self._put(message, on_failure)

    async def _put(
        self, message: Any, settled: asyncio.Future[DeleteResult] | OnFailure
    ) -> Deletable:
        if self._closed:
            raise RuntimeError("this msgdel.Batcher is closed; create a new one to delete more")
        adapter = _dispatch.resolve(_dispatch.registry_of(self.registry), message, self.require)
        _dispatch.note_requested((message,))
        bind_to_subscriber(message)  # FastStream 0.6: only the submitting handler knows the client
        remember_handler(message)  # the flush may run in another handler's task, or none
        while self._outstanding >= self.max_pending:
            room = self._room_event()
            room.clear()
            await room.wait()
        self._outstanding += 1
        self._buffer.append((message, adapter, settled))
        if len(self._buffer) >= self.max_size:
            self._send()
            # Let the batch go on the wire now: a consumer whose handlers never wait (one read
            # of a backlog, handled in one go) would otherwise queue every batch before the
            # first is sent, holding every message until the read is handled.
            await asyncio.sleep(0)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self._send)
        return adapter

    async def delete(self, message: Any) -> DeleteResult:
        """Submit `message` and wait for its result (or raise its error).

        Cancelling the caller does not withdraw the deletion: it is still sent.
        """
        future = await self.submit(message)
        return await asyncio.shield(future)

    async def flush(self) -> None:
        """Send everything queued now and wait until every batch sent so far has settled."""
        self._send()
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    async def close(self) -> None:
        """Refuse new submissions, then flush and wait for every outstanding result."""
        self._closed = True
        while self._buffer or self._inflight:
            await self.flush()
            if self._buffer or self._inflight:
                await asyncio.sleep(0)

    async def __aenter__(self) -> Batcher:
        self._closed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<msgdel.Batcher {state} pending={self._outstanding} max_size={self.max_size} "
            f"max_delay={self.max_delay} max_pending={self.max_pending}>"
        )

    # -- internals -----------------------------------------------------------------------
    def _room_event(self) -> asyncio.Event:
        if self._room is None:
            self._room = asyncio.Event()
        return self._room

    def _send(self) -> None:
        """Move the buffer into a batch task (no-op when the buffer is empty)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _run(self, batch: list[_Item]) -> None:
        """Deliver one batch; every message in it is settled when this returns or is
        cancelled (its future, or its failure handler for a final failure)."""
        open_ = [not _withdrawn(item[2]) for item in batch]  # not settled (nor withdrawn) yet
        try:
            groups: dict[int, tuple[Deletable, list[int]]] = {}
            for position, (_, adapter, _) in enumerate(batch):
                if open_[position]:
                    groups.setdefault(id(adapter), (adapter, []))[1].append(position)
            if len(groups) == 1:
                ((adapter, positions),) = groups.values()
                await self._deliver(adapter, batch, positions, open_)
            elif groups:
                await asyncio.gather(
                    *(self._deliver(a, batch, ps, open_) for a, ps in groups.values())
                )
        finally:
            for position, still_open in enumerate(open_):
                if still_open:
                    message, _, settled = batch[position]
                    _settle(message, settled, _cancelled_batch())
            self._release(len(batch))

    async def _deliver(
        self, adapter: Deletable, batch: list[_Item], positions: list[int], open_: list[bool]
    ) -> None:
        """Settle the messages at `positions` of `batch` with their outcomes (marking them
        closed in `open_`); retry the retryable failures."""
        registry = _dispatch.registry_of(self.registry)
        attempt = 0
        while True:
            messages = [batch[p][0] for p in positions]
            outcomes = await _dispatch.call(registry, adapter, messages, "batch")
            retry: list[int] = []
            for position, outcome in zip(positions, outcomes):
                if (
                    isinstance(outcome, DeletionFailed)
                    and outcome.retryable
                    and attempt < self.retries
                ):
                    retry.append(position)
                else:
                    open_[position] = False
                    _settle(batch[position][0], batch[position][2], outcome)
            if not retry:
                return
            delay = min(self.backoff * 2**attempt, self.max_backoff)
            attempt += 1
            error = outcomes[positions.index(retry[0])]
            log.warning("retrying %d deletions through %r in %.2fs (attempt %d of %d): %s",
                        len(retry), adapter, delay, attempt, self.retries, error,
                        extra={"broker": adapter.features.broker, "operation": "batch",
                               "outcome": type(error).__name__, "messages": len(retry),
                               "attempt": attempt})  # fmt: skip
            await asyncio.sleep(delay)
            positions = retry

    def _release(self, count: int) -> None:
        self._outstanding -= count
        if self._room is not None and self._outstanding < self.max_pending:
            self._room.set()


def _cancelled_batch() -> DeletionFailed:
    return DeletionFailed(
        "the batch was cancelled before the broker answered; the message may or may not "
        "have been deleted: delete it again to find out",
        retryable=True,
    )


def _withdrawn(settled: asyncio.Future[DeleteResult] | OnFailure) -> bool:
    """Whether a submitter cancelled its future (no failure handler is ever withdrawn)."""
    return isinstance(settled, asyncio.Future) and settled.done()


def _settle(
    message: Any,
    settled: asyncio.Future[DeleteResult] | OnFailure,
    outcome: DeleteResult | MsgdelError,
) -> None:
    """Give `outcome` to the message's future, or a failure to its failure handler."""
    if isinstance(settled, asyncio.Future):
        if settled.done():
            return
        if isinstance(outcome, BaseException):
            settled.set_exception(outcome)
        else:
            settled.set_result(outcome)
    elif isinstance(outcome, MsgdelError):
        settled(message, outcome)
