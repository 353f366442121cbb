"""`msgdel reap URL --stream S ...`: reap a Redis group's or a JetStream consumer's dead messages
once.

`redis://` (`--group G`): one sweep of [`RedisReaper`][msgdel.reaper.RedisReaper]: the group's
entries pending with at least `--min-deliveries` deliveries or `--min-idle` seconds idle are
acknowledged and deleted, after being copied to the stream `--dead-letter` when it is given.

`nats://` (`--consumer C`): one [`JetStreamReaper.sweep()`][msgdel.reaper.JetStreamReaper],
the recovery scan of a work-queue stream: the messages the durable consumer gave up on (its
`max_deliver`) are deleted, after being copied to the subject `--dead-letter` when it is given.
Other streams are refused (their consumer's state cannot tell dead from acknowledged messages).

`--dry-run` reads and changes nothing. Progress goes to standard error, the summary table to
standard output. Exit status: 0 when the sweep completed and nothing failed, 1 otherwise, 2 for
a bad argument (nothing sent). The URL's password is never printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgdel._urls import scheme_of
from msgdel.address import JetStreamSequence, RedisEntry
from msgdel.cli import _console
from msgdel.cli._console import BadArgument
from msgdel.cli._url import url_argument, with_env_password
from msgdel.errors import MsgdelError, redact
from msgdel.reaper._base import Policy, SweepReport
from msgdel.semantics import Outcome

if TYPE_CHECKING:
    from msgdel.reaper import RedisReaper

COMMAND = "msgdel reap"
REDIS_SCHEMES = RedisEntry.schemes
NATS_SCHEMES = JetStreamSequence.schemes
PAGE_SIZE = 200
"""Redis pending entries read per round trip, unless `--page-size` says otherwise."""
NATS_BATCH = 100
"""Dead JetStream messages a sweep reaps at a time: the progress bar moves by batches."""

Sweep = Callable[[str], Coroutine[Any, Any, "SweepReport | None"]]
"""One sweep on a client opened for a URL; None when it could not begin (the error is printed)."""


def command(
    url: Annotated[
        str, url_argument("redis://, rediss://, unix:// or nats://, tls://, ws://, wss://")
    ],
    stream: Annotated[str, typer.Option("--stream", help="The stream to reap.")],
    group: Annotated[
        str | None,
        typer.Option("--group", help="Redis: the consumer group whose pending entries are reaped."),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(
            "--consumer",
            help="JetStream: the durable consumer whose given-up messages are reaped.",
        ),
    ] = None,
    min_deliveries: Annotated[
        int | None,
        typer.Option(
            "--min-deliveries",
            min=1,
            metavar="N",
            help="Redis: dead when delivered at least N times.",
        ),
    ] = None,
    min_idle: Annotated[
        float | None,
        typer.Option(
            "--min-idle",
            min=0,
            metavar="SECONDS",
            help="Redis: dead when idle (not delivered again) at least this long.",
        ),
    ] = None,
    dead_letter: Annotated[
        str | None,
        typer.Option(
            "--dead-letter",
            metavar="STREAM|SUBJECT",
            help="Copy each dead message here first: a Redis stream (atomically), or a "
            "subject a JetStream stream captures (the copy is stored before the delete).",
        ),
    ] = None,
    ignore_other_groups: Annotated[
        bool,
        typer.Option(
            "--ignore-other-groups",
            help="Redis: delete even entries another consumer group still needs "
            "(by default they are kept, and reported deferred).",
        ),
    ] = False,
    ignore_other_consumers: Annotated[
        bool | None,
        typer.Option(
            "--ignore-other-consumers/--keep-for-other-consumers",
            help="JetStream: delete a dead message even while another consumer of the stream "
            "still needs it (the default), or keep it, deferred, until they all acknowledged it.",
            show_default=False,
        ),
    ] = None,
    page_size: Annotated[
        int | None,
        typer.Option(
            "--page-size",
            min=1,
            help=f"Redis: pending entries read per round trip [default: {PAGE_SIZE}].",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Redis: at most this many dead entries a second."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what is dead; change nothing.")
    ] = False,
) -> None:
    """Reap a Redis group's or a JetStream consumer's dead messages: delete them, or
    dead-letter them first.

    Exit status 1 when the sweep failed or stopped early, 2 for a bad argument.
    """
    scheme = scheme_of(url)
    try:
        if scheme in REDIS_SCHEMES:
            _refuse_nats_options(consumer, ignore_other_consumers)
            sweep = _redis(stream, group, min_deliveries, min_idle, dead_letter,
                           ignore_other_groups, page_size, rate, dry_run)  # fmt: skip
        elif scheme in NATS_SCHEMES:
            _refuse_redis_options(group, min_deliveries, min_idle, ignore_other_groups,
                                  page_size, rate)  # fmt: skip
            sweep = _jetstream(stream, consumer, dead_letter, ignore_other_consumers, dry_run)
        else:
            known = ", ".join(f"{s}://" for s in REDIS_SCHEMES + NATS_SCHEMES)
            raise BadArgument(f"URL {redact(url)!r} is not a Redis or NATS URL ({known})")
    except BadArgument as exc:
        _console.error(COMMAND, str(exc))
        raise typer.Exit(2) from None
    report = asyncio.run(sweep(with_env_password(url)))
    if report is None:
        raise typer.Exit(1)
    _summary(report, redis=scheme in REDIS_SCHEMES)
    if report.error is not None:
        _console.error(COMMAND, str(report.error))
    elif report.errors:  # the sweep went on past them: say why the first one failed
        _console.error(COMMAND, f"{report.failed} failed, the first: {report.errors[0]}")
    if not report.complete or report.failed:
        raise typer.Exit(1)


# -- Redis -----------------------------------------------------------------------------------


def _refuse_nats_options(consumer: str | None, ignore_other_consumers: bool | None) -> None:
    """`BadArgument` for the first JetStream-only option given with a redis:// URL."""
    if consumer is not None:
        raise BadArgument("--consumer is for a JetStream consumer (a nats:// URL); "
                          "a Redis stream takes --group")  # fmt: skip
    if ignore_other_consumers is not None:
        raise BadArgument(
            "--ignore-other-consumers and --keep-for-other-consumers are for JetStream "
            "(a nats:// URL); Redis takes --ignore-other-groups"
        )


def _redis(
    stream: str,
    group: str | None,
    min_deliveries: int | None,
    min_idle: float | None,
    dead_letter: str | None,
    ignore_other_groups: bool,
    page_size: int | None,
    rate: float | None,
    dry_run: bool,
) -> Sweep:
    """The Redis sweep these arguments ask for, every one checked; `BadArgument` otherwise."""
    if group is None:
        raise BadArgument("give --group GROUP: the consumer group whose pending entries are reaped")
    try:
        from msgdel.reaper import RedisReaper
    except ImportError:
        raise BadArgument(
            "reaping Redis needs the 'redis' extra: pip install 'msgdel[redis]'"
        ) from None
    try:
        policy = Policy(
            min_deliveries=min_deliveries, min_idle=min_idle, dead_letter=dead_letter,
            ignore_other_groups=ignore_other_groups,
        )  # fmt: skip

        def reaper(client: object) -> RedisReaper:
            return RedisReaper(
                client, stream=stream, group=group, policy=policy,  # type: ignore[arg-type]
                page_size=page_size or PAGE_SIZE, rate=rate, dry_run=dry_run,
            )  # fmt: skip

        reaper("redis://")  # every argument checked before anything is sent
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if "min_deliveries or min_idle" in message:
            message = "give --min-deliveries N or --min-idle SECONDS (or both)"
        raise BadArgument(message) from None

    async def sweep(url: str) -> SweepReport | None:
        return await _sweep_redis(url, reaper)

    return sweep


async def _sweep_redis(url: str, make: Callable[[object], RedisReaper]) -> SweepReport | None:
    """One sweep on a client opened for `url`, with a progress bar; None when it could not
    begin (the error is printed)."""
    from msgdel.adapters.redis import RedisStreamAdapter

    try:
        async with RedisStreamAdapter().connect(url) as client:
            reaper = make(client)
            total = await reaper.pending()
            progress = _progress(disable=total <= reaper.page_size)
            with progress:
                task = progress.add_task("sweeping", total=total)
                return await reaper.sweep(progress=lambda n: progress.advance(task, n))
    except MsgdelError as exc:  # no connection, or no such group: nothing was reaped
        _console.error(COMMAND, str(exc))
        return None


# -- JetStream -------------------------------------------------------------------------------


def _refuse_redis_options(
    group: str | None,
    min_deliveries: int | None,
    min_idle: float | None,
    ignore_other_groups: bool,
    page_size: int | None,
    rate: float | None,
) -> None:
    """`BadArgument` for the first Redis-only option given with a nats:// URL."""
    if group is not None:
        raise BadArgument("--group is for a Redis consumer group (a redis:// URL); "
                          "a JetStream stream takes --consumer")  # fmt: skip
    for name, value in (("--min-deliveries", min_deliveries), ("--min-idle", min_idle)):
        if value is not None:
            raise BadArgument(f"{name} is for Redis (a redis:// URL): on JetStream the "
                              "consumer's max_deliver decides what is dead")  # fmt: skip
    if ignore_other_groups:
        raise BadArgument("--ignore-other-groups is for Redis (a redis:// URL); JetStream takes "
                          "--ignore-other-consumers or --keep-for-other-consumers")  # fmt: skip
    if page_size is not None or rate is not None:
        name = "--page-size" if page_size is not None else "--rate"
        raise BadArgument(f"{name} is for Redis (a redis:// URL): a JetStream sweep reads the "
                          "stream one message at a time, and has no page size or rate")  # fmt: skip


def _jetstream(
    stream: str,
    consumer: str | None,
    dead_letter: str | None,
    ignore_other_consumers: bool | None,
    dry_run: bool,
) -> Sweep:
    """The JetStream sweep these arguments ask for, every one checked; `BadArgument`
    otherwise."""
    if consumer is None:
        raise BadArgument(
            "give --consumer NAME: the durable consumer whose given-up messages are reaped"
        )
    try:
        from msgdel.reaper import JetStreamReaper
    except ImportError:
        raise BadArgument(
            "reaping JetStream needs the 'nats' extra: pip install 'msgdel[nats]'"
        ) from None
    options: dict[str, Any] = {
        "stream": stream, "consumer": consumer, "dead_letter": dead_letter, "dry_run": dry_run,
        "ignore_other_consumers": ignore_other_consumers is not False,  # True by default
    }  # fmt: skip
    try:
        JetStreamReaper("nats://", **options)  # every argument checked before anything is sent
    except (TypeError, ValueError) as exc:
        raise BadArgument(str(exc).replace("dead_letter", "--dead-letter")) from None

    async def sweep(url: str) -> SweepReport | None:
        return await _sweep_jetstream(url, options)

    return sweep


async def _sweep_jetstream(url: str, options: dict[str, Any]) -> SweepReport | None:
    """One recovery sweep on a client opened for `url`, with a progress bar through the
    consumer's unacknowledged sequences; None when it could not begin (the error is printed):
    no connection, no such consumer, or a stream that is not a work queue."""
    import nats.errors
    import nats.js.errors

    from msgdel.adapters.nats import JetStreamAdapter
    from msgdel.reaper import JetStreamReaper

    try:
        async with JetStreamAdapter().connect(url) as client:
            reaper = JetStreamReaper(client, **options)
            js = client.jetstream(timeout=reaper.timeout)
            try:
                info = await js.consumer_info(reaper.stream, reaper.consumer)
                config = (await js.stream_info(reaper.stream)).config
            except nats.js.errors.NotFoundError:
                raise MsgdelError(f"JetStream has no consumer {reaper.consumer!r} of stream "
                                  f"{reaper.stream!r}; nothing was reaped") from None  # fmt: skip
            except (nats.errors.Error, asyncio.TimeoutError) as exc:
                raise MsgdelError(f"NATS did not answer ({redact(repr(exc))}); nothing was "
                                  "reaped") from None  # fmt: skip
            retention = str(getattr(config.retention, "value", config.retention))
            if retention != "workqueue":
                raise MsgdelError(
                    f"stream {reaper.stream!r} has {retention} retention, so its consumer's "
                    "state cannot tell the dead messages from the acknowledged ones, and one "
                    "sweep would find none: reap it with a JetStreamReaper running beside the "
                    "app (it reaps each max-deliveries advisory); nothing was reaped"
                )
            floor = info.ack_floor.stream_seq or 0 if info.ack_floor else 0
            last = info.delivered.stream_seq or 0 if info.delivered else 0
            total = max(0, last - floor)
            progress = _progress(disable=total <= NATS_BATCH)
            with progress:
                task = progress.add_task("sweeping", total=total)
                return await reaper.sweep(progress=lambda n: progress.advance(task, n))
    except MsgdelError as exc:
        _console.error(COMMAND, str(exc))
        return None


# -- both ------------------------------------------------------------------------------------


def _progress(*, disable: bool) -> Progress:
    """A progress bar on standard error."""
    return Progress(
        TextColumn("sweeping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=_console.console(stderr=True), disable=disable,
    )  # fmt: skip


def _summary(report: SweepReport, *, redis: bool) -> None:
    out = _console.console()
    title = (
        "dry run: nothing was changed"
        if report.dry_run
        else f"msgdel reap {report.target} ({report.reader})"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("entries" if redis else "messages", no_wrap=True)
    table.add_column("count", justify="right")
    rows = (
        [("pending, scanned", report.scanned), ("dead by the policy", report.dead)]
        if redis
        else [("delivered, scanned", report.scanned), ("given up by the consumer", report.dead)]
    )
    rows += [(outcome.value, report.count(outcome)) for outcome in Outcome if report.count(outcome)]
    if report.dead_lettered or (report.dead and not report.dry_run):
        rows.append(("dead-lettered", report.dead_lettered))
    if report.released:
        rows.append(("released (settled or claimed meanwhile)", report.released))
    if report.failed:
        rows.append(("failed", report.failed))
    for name, count in rows:
        table.add_row(name, str(count), style="red" if name == "failed" else None)
    out.print(table)
    status = "complete" if report.complete else "stopped early"
    out.print(f"{status} in {report.seconds:.2f} s", soft_wrap=True)
