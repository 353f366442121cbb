"""What every reaper shares: its report, its tally, and running it in the background."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from msgdel.errors import MsgdelError
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome

log = logging.getLogger("msgdel.reaper")
"""One INFO line per sweep that found something dead, a WARNING per sweep that failed."""


def _at_least(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"Policy.{attribute.name} must be a number or None, got {value!r}")
        if value < minimum:
            raise ValueError(f"Policy.{attribute.name} must be >= {minimum}, got {value!r}")

    return check


@attrs.frozen
class Policy:
    """What counts as dead, and what is done with it.

    An entry is dead when it is pending in the reaper's group and was delivered at least
    `min_deliveries` times, or has been idle (not delivered, claimed or acknowledged) for at
    least `min_idle` seconds: either criterion is enough; at least one must be given.
    A dead entry is acknowledged in the group and deleted, after being copied to the stream
    `dead_letter` when one is named (atomically: see [`RedisReaper`][msgdel.reaper.RedisReaper]).
    By default it is kept (`DEFERRED`) while another consumer group still needs it;
    `ignore_other_groups=True` deletes it for every group.
    """

    min_deliveries: int | None = attrs.field(default=None, kw_only=True, validator=_at_least(1))
    min_idle: float | None = attrs.field(default=None, kw_only=True, validator=_at_least(0))
    dead_letter: str | None = attrs.field(default=None, kw_only=True)
    ignore_other_groups: bool = attrs.field(
        default=False, kw_only=True, validator=attrs.validators.instance_of(bool)
    )

    def __attrs_post_init__(self) -> None:
        if self.min_deliveries is None and self.min_idle is None:
            raise ValueError("a Policy needs min_deliveries or min_idle (or both)")
        if isinstance(self.min_deliveries, float):
            raise TypeError(f"Policy.min_deliveries must be an int, got {self.min_deliveries!r}")
        if self.dead_letter is not None and (
            not isinstance(self.dead_letter, str) or not self.dead_letter
        ):
            raise TypeError(f"Policy.dead_letter must be a stream key or None, "
                            f"got {self.dead_letter!r}")  # fmt: skip

    def is_dead(self, deliveries: int, idle_ms: int) -> bool:
        """Whether a pending entry delivered `deliveries` times, idle `idle_ms`, is dead."""
        return (self.min_deliveries is not None and deliveries >= self.min_deliveries) or (
            self.min_idle is not None and idle_ms >= self._idle_ms
        )

    @property
    def _idle_ms(self) -> int:
        return -1 if self.min_idle is None else int(self.min_idle * 1000)


SAMPLE = 100
"""How many results and errors a [`SweepReport`][msgdel.reaper.SweepReport] keeps by default."""


@attrs.frozen
class SweepReport:
    """What one sweep (or one advisory-driven run) found and did.

    Counts cover every dead message; `results` and `errors` are bounded samples (the first
    ones), so a report of a sweep over a huge backlog stays small."""

    target: str
    """The stream swept (Redis stream key, JetStream stream)."""
    reader: str
    """The consumer group (Redis) or durable consumer (JetStream) whose dead messages these are."""
    dry_run: bool
    """Nothing was changed: every dead message's outcome is `SKIPPED`."""
    scanned: int
    """Pending entries (or consumer deliveries) looked at."""
    dead: int
    """Of those, how many the policy called dead."""
    outcomes: Mapping[Outcome, int]
    """How many dead messages had each outcome (`DELETED`, `DEFERRED`, `ALREADY_GONE`, ...)."""
    dead_lettered: int
    """How many were copied to the dead-letter destination (then deleted, or `DEFERRED`)."""
    released: int
    """Dead when found, but no longer when reached: another reaper or a consumer settled or
    claimed it first. Nothing was done to them, and they have no result."""
    failed: int
    """Dead messages whose deletion failed: they are where they were (still pending), or
    done, but not known to be done; a later sweep finds what is left."""
    results: tuple[DeleteResult, ...]
    """The first results (at most the reaper's `sample`)."""
    errors: tuple[MsgdelError, ...]
    """The first errors (at most the reaper's `sample`)."""
    complete: bool
    """The sweep reached the end of the pending list; False when `error` stopped it."""
    error: MsgdelError | None
    """Why the sweep stopped early (the broker refused, or could not be reached)."""
    seconds: float

    def count(self, outcome: Outcome) -> int:
        """How many dead messages had `outcome`."""
        return self.outcomes.get(outcome, 0)

    @property
    def reaped(self) -> int:
        """Dead messages the broker no longer keeps for this reader: deleted, already gone, or
        deferred for another reader (acknowledged for this one)."""
        return sum(n for outcome, n in self.outcomes.items() if outcome is not Outcome.SKIPPED)


class Tally:
    """A sweep's counts as it goes, with bounded samples of its results and errors."""

    def __init__(self, target: str, reader: str, dry_run: bool, sample: int) -> None:
        self.target, self.reader, self.dry_run, self.sample = target, reader, dry_run, sample
        self.began = time.perf_counter()
        self.scanned = self.dead = self.dead_lettered = self.released = self.failed = 0
        self.outcomes: dict[Outcome, int] = {}
        self.results: list[DeleteResult] = []
        self.errors: list[MsgdelError] = []
        self.error: MsgdelError | None = None

    def add(self, outcome: DeleteResult | MsgdelError) -> None:
        """Count one dead message's outcome (and keep it, while the sample has room)."""
        if isinstance(outcome, DeleteResult):
            self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
            if len(self.results) < self.sample:
                self.results.append(outcome)
        else:
            self.failed += 1
            if len(self.errors) < self.sample:
                self.errors.append(outcome)

    def stop(self, error: MsgdelError) -> None:
        """The sweep ends early because of `error`."""
        self.error = error
        if len(self.errors) < self.sample:
            self.errors.append(error)

    def report(self) -> SweepReport:
        return SweepReport(
            self.target, self.reader, self.dry_run, self.scanned, self.dead,
            dict(self.outcomes), self.dead_lettered, self.released, self.failed,
            tuple(self.results), tuple(self.errors), self.error is None, self.error,
            time.perf_counter() - self.began,
        )  # fmt: skip


class Pace:
    """At most `rate` messages a second (None: no limit), averaged since the pace began."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.began = time.monotonic()
        self.done = 0

    async def wait(self, done: int) -> None:
        """Count `done` more messages and sleep until the rate allows the next one."""
        self.done += done
        if self.rate is not None and done:
            ahead = self.done / self.rate - (time.monotonic() - self.began)
            if ahead > 0:
                await asyncio.sleep(ahead)


def positive(name: str, value: object, *, optional: bool = False, integer: bool = False) -> Any:
    """`value` after checking it is a positive number (an int when `integer`), or None when
    `optional`; a `TypeError` or `ValueError` naming `name` otherwise."""
    if value is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        what = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {what} > 0{' or None' if optional else ''}, got {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


class Runner:
    """Runs a reaper in the background: `async with reaper:`, `start()`/`stop()`, or
    `attach(app)` to a FastStream app. Subclasses implement `_open`, `_close` and `_run`."""

    on_report: Callable[[SweepReport], None] | None
    last_report: SweepReport | None
    interval: float

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.last_report = None
        self.on_report = None

    async def _open(self) -> None:
        """Connect, when the reaper was given a URL."""

    async def _close(self) -> None:
        """Close what `_open` opened."""

    async def _run(self) -> None:
        """Reap until cancelled."""
        raise NotImplementedError

    def _reported(self, report: SweepReport) -> None:
        """Keep `report` as `last_report`, log it and hand it to `on_report`."""
        self.last_report = report
        if report.error is not None:
            log.warning("msgdel reaper on %s (%s) stopped early: %s", report.target,
                        report.reader, report.error)  # fmt: skip
        elif report.dead:
            log.info(
                "msgdel reaper on %s (%s): %d dead, %d dead-lettered, %s",
                report.target, report.reader, report.dead, report.dead_lettered,
                ", ".join(f"{o.value} {n}" for o, n in report.outcomes.items()) or "none reaped",
            )  # fmt: skip
        if self.on_report is not None:
            try:
                self.on_report(report)
            except Exception:
                log.exception("the reaper's on_report callback failed; reaping goes on")

    @property
    def running(self) -> bool:
        """Whether the background task is running."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect (for a URL) and start reaping in the background; a no-op when running."""
        if self.running:
            return
        await self._open()
        self._task = asyncio.get_running_loop().create_task(self._guarded())

    async def _guarded(self) -> None:
        """`_run`, started again after `interval` whenever it fails unexpectedly (logged)."""
        while True:
            try:
                await self._run()
                return
            except Exception:
                log.exception("msgdel reaper %r failed; it starts again in %s s", self,
                              self.interval)  # fmt: skip
                await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop reaping (a sweep under way is cancelled between atomic steps: every entry is
        where it was, or reaped) and close what `start` opened; a no-op when stopped."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._close()

    async def __aenter__(self) -> Any:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def attach(self, app: Any) -> Any:
        """Run beside a FastStream `app`: started after the app has started (its brokers are
        connected) and stopped when it begins to shut down. Returns `app`."""

        async def start_reaper() -> None:
            await self.start()

        async def stop_reaper() -> None:
            await self.stop()

        app.after_startup(start_reaper)
        app.on_shutdown(stop_reaper)
        return app
