"""`msgdel erase URL ...`: erase one person's records by key, from a shell. A dry run unless
`--apply`.

The URL's scheme picks the broker, and the options name the targets:

- `redis://`: `--stream STREAM` (repeatable) `--field FIELD --value VALUE`;
- `nats://`: `--stream STREAM --subject SUBJECT`, `--kv BUCKET --key KEY` (repeatable), or
  `--object-store BUCKET --object NAME` (repeatable);
- `mqtt://`: `--topic TOPIC` (repeatable);
- `kafka://`: `--topic TOPIC` (repeatable) `--key KEY`, and `--truncate` to truncate a topic
  that is not compacted.

`--value -` (and `--key -`, `--subject -`) reads the identifier from the first line of
standard input, so it stays out of the shell's history. The report (a table, or `--json`: one
object per target, for an audit trail) names every target, its counts and its outcome, and
never the personal data: identifiers appear only as fingerprints
([`msgdel.erasure.fingerprint`][msgdel.erasure.fingerprint]).

Exit status: 0 when every target was erased, found empty or dry-run, 1 when any is not
erasable or incomplete, 2 for a bad argument (nothing sent). The URL's password is never
printed.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from collections import Counter
from typing import Annotated, Any

import typer
from rich import box
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgdel._urls import scheme_of
from msgdel.address import KvKey
from msgdel.cli import _console
from msgdel.cli._console import BadArgument
from msgdel.cli._url import url_argument, with_env_password
from msgdel.errors import redact

COMMAND = "msgdel erase"


def command(
    url: Annotated[str, url_argument("redis://, nats://, kafka://host:port, mqtt://")],
    stream: Annotated[
        list[str] | None,
        typer.Option("--stream", help="Redis stream key or JetStream stream (repeatable)."),
    ] = None,
    field: Annotated[
        str | None, typer.Option("--field", help="Redis: the field that identifies the person.")
    ] = None,
    value: Annotated[
        str | None,
        typer.Option("--value", help="Redis: the field's value ('-': read it from stdin)."),
    ] = None,
    subject: Annotated[
        str | None,
        typer.Option("--subject", help="JetStream: the subject filter ('-': from stdin)."),
    ] = None,
    kv: Annotated[
        str | None, typer.Option("--kv", metavar="BUCKET", help="NATS: a KV bucket.")
    ] = None,
    object_store: Annotated[
        str | None,
        typer.Option("--object-store", metavar="BUCKET", help="NATS: an object store bucket."),
    ] = None,
    objects: Annotated[
        list[str] | None, typer.Option("--object", help="NATS: an object's name (repeatable).")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="A KV key (repeatable) or the Kafka key ('-': from stdin)."),
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="MQTT or Kafka topic (repeatable).")
    ] = None,
    truncate: Annotated[
        bool,
        typer.Option(
            "--truncate",
            help="Kafka: truncate a topic that is not compacted up to the key's last record "
            "(everyone's records before it go too).",
        ),
    ] = False,
    apply: Annotated[
        bool, typer.Option("--apply", help="Erase. Without it: a dry run that changes nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per target, for an audit trail.")
    ] = False,
    page_size: Annotated[
        int, typer.Option("--page-size", min=1, help="Records a scan reads per round trip.")
    ] = 1000,
) -> None:
    """Erase one person's records by key, with a dry run first, progress and a report.

    Exit status 1 when any target is not erasable or incomplete, 2 for a bad argument.
    """
    try:
        scheme = scheme_of(url)
        stdin = _Stdin()
        targets = _targets(
            scheme, stream or [], field, stdin.value(value), stdin.value(subject), kv,
            object_store, objects or [], [stdin.value(k) or "" for k in key or []],
            topic or [], truncate,
        )  # fmt: skip
        url = with_env_password(url)
    except (BadArgument, ValueError, TypeError) as exc:
        _console.error(COMMAND, str(exc))
        raise typer.Exit(2) from None
    reports = asyncio.run(_run(url, targets, not apply, page_size))
    _report(reports, as_json, not apply)
    from msgdel.erasure import ErasureOutcome

    bad = (ErasureOutcome.NOT_ERASABLE, ErasureOutcome.INCOMPLETE)
    if any(r.outcome in bad for r in reports):
        raise typer.Exit(1)


class _Stdin:
    """The identifier given as `-`, read once from standard input."""

    def __init__(self) -> None:
        self.line: str | None = None

    def value(self, given: str | None) -> str | None:
        if given != "-":
            return given
        if self.line is None:
            self.line = sys.stdin.readline().rstrip("\r\n")
            if not self.line:
                raise BadArgument("'-' reads the identifier from standard input, which was empty")
        return self.line


def _targets(
    scheme: str,
    streams: list[str],
    field: str | None,
    value: str | None,
    subject: str | None,
    kv: str | None,
    object_store: str | None,
    objects: list[str],
    keys: list[str],
    topics: list[str],
    truncate: bool,
) -> list[Any]:
    """The targets the options name for `scheme`; `BadArgument` for what does not fit."""
    from msgdel import erasure

    if scheme in erasure.RedisStreamField.schemes:
        if not streams or field is None or value is None:
            raise BadArgument("a redis:// erasure needs --stream, --field and --value")
        return [erasure.RedisStreamField(s, field, value) for s in streams]
    if scheme in erasure.JetStreamSubject.schemes:
        targets: list[Any] = []
        if subject is not None:
            if not streams:
                raise BadArgument("--subject needs --stream (the JetStream stream)")
            targets += [erasure.JetStreamSubject(s, subject) for s in streams]
        if kv is not None:
            if not keys:
                raise BadArgument("--kv needs --key")
            targets += [KvKey(kv, k) for k in keys]
        if object_store is not None:
            if not objects:
                raise BadArgument("--object-store needs --object")
            targets += [erasure.ObjectName(object_store, o) for o in objects]
        if not targets:
            raise BadArgument(
                "a nats:// erasure needs --stream and --subject, --kv and --key, or "
                "--object-store and --object"
            )
        return targets
    if scheme in erasure.RetainedTopics.schemes:
        if not topics:
            raise BadArgument("an mqtt:// erasure needs --topic")
        return [erasure.RetainedTopics(topics)]
    if scheme in erasure.KafkaKey.schemes:
        if not topics or len(keys) != 1:
            raise BadArgument("a kafka:// erasure needs --topic and one --key")
        return [erasure.KafkaKey(t, keys[0], truncate=truncate) for t in topics]
    raise BadArgument(
        f"URL {redact(scheme + '://...')!r} is not a broker URL msgdel erases on (redis://, "
        "nats://, mqtt://, kafka://)"
    )


async def _run(url: str, targets: list[Any], dry_run: bool, page_size: int) -> list[Any]:
    from msgdel import erasure

    err = _console.console(stderr=True)
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=err, transient=True, disable=not err.is_terminal,
    )  # fmt: skip
    tasks: dict[int, Any] = {}

    def advance(p: erasure.Progress) -> None:
        what = f"{p.target}: scanned {p.scanned}, matched {p.matched}, removed {p.removed}"
        if p.index not in tasks:
            tasks[p.index] = progress.add_task(what, total=None)
        progress.update(tasks[p.index], description=what)

    with progress:
        return await erasure.erase(
            url, targets, dry_run=dry_run, page_size=page_size, progress=advance
        )


def _report(reports: list[Any], as_json: bool, dry_run: bool) -> None:
    at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if as_json:
        for report in reports:
            record = {"at": at, "dry_run": dry_run, **report.as_dict()}
            sys.stdout.write(json.dumps(record) + "\n")
        return
    out = _console.console()
    title = (
        f"dry run at {at}: nothing was changed (--apply erases)" if dry_run else f"erased at {at}"
    )
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("target", "outcome", "matched", "removed", "marked", "gone by", "note"):
        table.add_column(column, no_wrap=column in ("outcome", "gone by"))
    counts: Counter[str] = Counter()
    for r in reports:
        counts[r.outcome.value] += 1
        gone = r.gone_by.isoformat(timespec="seconds") if r.gone_by else "-"
        note = r.reason or ""
        if r.removes:
            note = f"{note} [{', '.join(r.removes)}]".strip()
        if r.resume_from:
            note = f"{note} (resume after {r.resume_from})"
        style = "red" if r.outcome.value in ("not_erasable", "incomplete") else None
        table.add_row(r.target, r.outcome.value, str(r.matched), str(r.removed), str(r.marked),
                      gone, note or "-", style=style)  # fmt: skip
    out.print(table)
    out.print(", ".join(f"{name} {n}" for name, n in sorted(counts.items())), soft_wrap=True)
