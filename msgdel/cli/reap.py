"""`msgdel reap URL --stream S --group G ...`: reap a Redis consumer group's dead entries once.

One sweep of [`RedisReaper`][msgdel.reaper.RedisReaper]: the group's entries pending with at
least `--min-deliveries` deliveries or `--min-idle` seconds idle are acknowledged and deleted,
after being copied to `--dead-letter` when it is given. `--dry-run` changes nothing. Progress
goes to standard error, the summary table to standard output.

Exit status: 0 when the sweep completed and nothing failed, 1 otherwise, 2 for a bad argument
(nothing sent). The URL's password is never printed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgdel.cli import _console
from msgdel.cli.delete import _with_password
from msgdel.errors import MsgdelError, redact
from msgdel.reaper._base import Policy, SweepReport
from msgdel.semantics import Outcome

if TYPE_CHECKING:
    from msgdel.reaper import RedisReaper

COMMAND = "msgdel reap"


def command(
    url: Annotated[
        str,
        typer.Argument(
            help="The Redis server: redis://, rediss://, unix://. A password may come from "
            "MSGDEL_PASSWORD instead of the URL.",
            show_default=False,
        ),
    ],
    stream: Annotated[str, typer.Option("--stream", help="The stream to reap.")],
    group: Annotated[
        str, typer.Option("--group", help="The consumer group whose pending entries are reaped.")
    ],
    min_deliveries: Annotated[
        int | None,
        typer.Option(
            "--min-deliveries", min=1, metavar="N", help="Dead when delivered at least N times."
        ),
    ] = None,
    min_idle: Annotated[
        float | None,
        typer.Option(
            "--min-idle",
            min=0,
            metavar="SECONDS",
            help="Dead when idle (not delivered again) at least this long.",
        ),
    ] = None,
    dead_letter: Annotated[
        str | None,
        typer.Option(
            "--dead-letter",
            metavar="STREAM",
            help="Copy each dead entry to this stream first (atomically).",
        ),
    ] = None,
    ignore_other_groups: Annotated[
        bool,
        typer.Option(
            "--ignore-other-groups",
            help="Delete even entries another consumer group still needs "
            "(by default they are kept, and reported deferred).",
        ),
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Pending entries read per round trip.")
    ] = 200,
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="At most this many dead entries a second."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what is dead; change nothing.")
    ] = False,
) -> None:
    """Reap a Redis consumer group's dead entries: delete them, or dead-letter them first.

    Exit status 1 when the sweep failed or stopped early, 2 for a bad argument.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        _console.error(COMMAND, f"URL {redact(url)!r} is not a redis://, rediss:// or unix:// URL")
        raise typer.Exit(2)
    try:
        from msgdel.reaper import RedisReaper
    except ImportError:
        _console.error(
            COMMAND, "reaping Redis needs the 'redis' extra: pip install 'msgdel[redis]'"
        )
        raise typer.Exit(2) from None
    try:
        policy = Policy(
            min_deliveries=min_deliveries, min_idle=min_idle, dead_letter=dead_letter,
            ignore_other_groups=ignore_other_groups,
        )  # fmt: skip

        def reaper(client: object) -> RedisReaper:
            return RedisReaper(
                client, stream=stream, group=group, policy=policy,  # type: ignore[arg-type]
                page_size=page_size, rate=rate, dry_run=dry_run,
            )  # fmt: skip

        reaper("redis://")  # every argument checked before anything is sent
    except (TypeError, ValueError) as exc:
        message = str(exc)
        if "min_deliveries or min_idle" in message:
            message = "give --min-deliveries N or --min-idle SECONDS (or both)"
        _console.error(COMMAND, message)
        raise typer.Exit(2) from None
    report = asyncio.run(_run(_with_password(url, os.environ.get("MSGDEL_PASSWORD")), reaper))
    if report is None:
        raise typer.Exit(1)
    _summary(report)
    if report.error is not None:
        _console.error(COMMAND, str(report.error))
    if not report.complete or report.failed:
        raise typer.Exit(1)


async def _run(url: str, make: Callable[[object], RedisReaper]) -> SweepReport | None:
    """One sweep on a client opened for `url`, with a progress bar; None when it could not
    begin (the error is printed)."""
    from msgdel.adapters.redis import RedisStreamAdapter

    try:
        async with RedisStreamAdapter().connect(url) as client:
            reaper = make(client)
            total = await reaper.pending()
            progress = Progress(
                TextColumn("sweeping"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=_console.console(stderr=True), disable=total <= reaper.page_size,
            )  # fmt: skip
            with progress:
                task = progress.add_task("sweeping", total=total)
                return await reaper.sweep(progress=lambda n: progress.advance(task, n))
    except MsgdelError as exc:  # no connection, or no such group: nothing was reaped
        _console.error(COMMAND, str(exc))
        return None


def _summary(report: SweepReport) -> None:
    out = _console.console()
    title = (
        "dry run: nothing was changed"
        if report.dry_run
        else f"msgdel reap {report.target} ({report.reader})"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("entries", no_wrap=True)
    table.add_column("count", justify="right")
    rows = [("pending, scanned", report.scanned), ("dead by the policy", report.dead)]
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
