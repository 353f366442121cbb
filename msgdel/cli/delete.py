"""`msgdel delete URL ADDRESS...`: delete stored messages by address, from a shell.

The URL's scheme picks the address form (`redis://` takes `STREAM:ENTRY_ID`, `nats://`
`STREAM:SEQUENCE` or, with `--kv BUCKET`, KV keys, `kafka://` `TOPIC:PARTITION:OFFSET`,
`mqtt://` a topic); every address is parsed before anything is sent. Addresses come from
the arguments, or from standard input, one a line, when there are none. Deletion goes
through [`msgdel.delete_at`][msgdel.delete_at] on one client opened for the whole run, in
batches, with the built-in adapter of the broker.

Exit status: 0 when no address failed (`already_gone` and `deferred` are not failures),
1 when any did, 2 for a bad argument (nothing sent). The URL's password is never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from msgdel._urls import scheme_of
from msgdel.adapters import BUILTINS
from msgdel.address import (
    Address,
    JetStreamSequence,
    KafkaOffset,
    KvKey,
    RedisEntry,
    RetainedTopic,
)
from msgdel.cli import _console
from msgdel.cli._console import BadArgument
from msgdel.cli._url import url_argument, with_env_password
from msgdel.errors import DeletionFailed, MsgdelError, redact
from msgdel.result import DeleteResult

if TYPE_CHECKING:
    from msgdel.protocol import AddressDeletable

COMMAND = "msgdel delete"
BATCH = 500
"""Addresses per `delete_at` call (one round trip per broker target each)."""

_FORMS: dict[str, type[Address]] = {
    scheme: form
    for form in (RedisEntry, JetStreamSequence, KafkaOffset, RetainedTopic)
    for scheme in form.schemes
}
"""URL scheme -> the address class its ADDRESS arguments are parsed as."""

_OPT_OUT: dict[type[Address], dict[str, bool]] = {
    RedisEntry: {"ignore_other_groups": True},
    JetStreamSequence: {"ignore_other_consumers": True},
    KafkaOffset: {"protect_groups": False},
}
"""What `--ignore-other-readers` passes to each adapter: delete even what another consumer
group or consumer still needs."""


def command(
    url: Annotated[str, url_argument("redis://, nats://, kafka://host:port, mqtt://")],
    addresses: Annotated[
        list[str] | None,
        typer.Argument(
            help="STREAM:ENTRY_ID (Redis), STREAM:SEQUENCE or a KV key (NATS), "
            "TOPIC:PARTITION:OFFSET (Kafka), TOPIC (MQTT). None: read them from standard "
            "input, one a line.",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option("--group", help="Redis: acknowledge the entries in this consumer group."),
    ] = None,
    kv: Annotated[
        str | None,
        typer.Option(
            "--kv", metavar="BUCKET", help="NATS: the addresses are keys of this KV bucket."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be deleted; send nothing.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per address, for scripts.")
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Kafka: truncate without asking.")
    ] = False,
    ignore_other_readers: Annotated[
        bool,
        typer.Option(
            "--ignore-other-readers",
            help="Delete even what another consumer group or consumer has not finished "
            "(Redis, JetStream, Kafka). By default that is kept, and reported deferred.",
        ),
    ] = False,
) -> None:
    """Delete stored messages by address, with a dry run, progress and a results table.

    Exit status 1 when any address failed, 2 for a bad argument.
    """
    try:
        form = _form(url, group, kv)
        texts = list(addresses) if addresses else list(_lines(sys.stdin))
        parsed = _parse(form, texts, group, kv)
        adapter = _adapter(form, ignore_other_readers)
        url = with_env_password(url)
        if form is KafkaOffset and not dry_run and not yes and not addresses:
            raise BadArgument("addresses came from standard input: pass --yes to truncate "
                              "Kafka partitions without a prompt (or --dry-run first)")  # fmt: skip
    except BadArgument as exc:
        _console.error(COMMAND, str(exc))
        raise typer.Exit(2) from None
    try:
        outcomes = asyncio.run(_run(url, adapter, parsed, dry_run, yes, as_json))
    except MsgdelError as exc:  # the whole run was refused: nothing was sent
        _console.error(COMMAND, str(exc))
        raise typer.Exit(1) from None
    if outcomes is None:  # the Kafka prompt was declined
        raise typer.Exit(1)
    _report(parsed, outcomes, as_json, dry_run)
    if any(isinstance(o, MsgdelError) for o in outcomes):
        raise typer.Exit(1)


def _form(url: str, group: str | None, kv: str | None) -> type[Address]:
    scheme = scheme_of(url)
    if scheme in ("amqp", "amqps"):
        raise BadArgument(
            "a RabbitMQ queue has no addresses: RabbitMQ removes a message only when a "
            "consumer settles it (delete consumed messages with msgdel.delete or "
            "DeleteMiddleware)"
        )
    form = _FORMS.get(scheme)
    if form is None:
        known = ", ".join(sorted({f"{s}://" for s in _FORMS}))
        raise BadArgument(f"URL {redact(url)!r} is not a broker URL msgdel knows ({known})")
    if group is not None and form is not RedisEntry:
        raise BadArgument("--group is for Redis stream entries (a redis:// URL)")
    if kv is not None:
        if form is not JetStreamSequence:
            raise BadArgument("--kv is for NATS KV buckets (a nats:// URL)")
        return KvKey
    return form


def _lines(stream: Iterable[str]) -> Iterator[str]:
    """The addresses of standard input: one a line, blank lines and `#` comments skipped."""
    for line in stream:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text


def _parse(form: type[Address], texts: Sequence[str], group: str | None, kv: str | None
           ) -> list[Address]:  # fmt: skip
    if not texts:
        raise BadArgument("no ADDRESS given, on the command line or on standard input")
    parsed: list[Address] = []
    for text in texts:
        try:
            if form is RedisEntry:
                parsed.append(RedisEntry.parse(text, group=group))
            elif form is KvKey:
                parsed.append(KvKey(kv or "", text))
            else:
                parsed.append(form.parse(text))
        except (ValueError, TypeError) as exc:
            raise BadArgument(f"ADDRESS {text!r}: {exc}") from None
    return parsed


def _adapter(form: type[Address], ignore_other_readers: bool) -> AddressDeletable:
    builtin = BUILTINS[f"{form.__module__}.{form.__qualname__}"]
    options = _OPT_OUT.get(form)
    if ignore_other_readers and options is None:
        raise BadArgument(
            f"--ignore-other-readers does not apply to {form.__name__}: nothing else reads it"
        )
    try:
        module = importlib.import_module(builtin.module)
    except ImportError:
        raise BadArgument(
            f"deleting {form.__name__} addresses needs the {builtin.extra!r} extra: "
            f"pip install 'msgdel[{builtin.extra}]'"
        ) from None
    adapter: AddressDeletable = getattr(module, builtin.factory)(
        **(options if ignore_other_readers and options else {})
    )
    return adapter


async def _run(
    url: str,
    adapter: AddressDeletable,
    addresses: list[Address],
    dry_run: bool,
    yes: bool,
    as_json: bool,
) -> list[DeleteResult | MsgdelError] | None:
    import msgdel

    if dry_run:
        return await msgdel.delete_at(url, addresses, adapter=adapter, dry_run=True,
                                      return_exceptions=True)  # fmt: skip
    err = _console.console(stderr=True)
    try:
        opened = adapter.connect(url)
        client = await opened.__aenter__()
    except Exception as exc:
        failure = exc if isinstance(exc, MsgdelError) else DeletionFailed(
            f"could not connect to {redact(url)} ({redact(repr(exc))}); nothing was sent",
            retryable=True,
        )  # fmt: skip
        return [failure] * len(addresses)
    try:
        kafka = isinstance(addresses[0], KafkaOffset)
        if kafka and not yes and not await _confirmed(adapter, client, addresses, err):
            return None
        outcomes: list[DeleteResult | MsgdelError] = []
        batches = [addresses[i : i + BATCH] for i in range(0, len(addresses), BATCH)]
        progress = Progress(
            TextColumn("deleting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=err, disable=len(batches) < 2,  # a progress bar on standard error
        )  # fmt: skip
        with progress:
            task = progress.add_task("deleting", total=len(addresses))
            for batch in batches:
                outcomes += await msgdel.delete_at(
                    client, batch, adapter=adapter, return_exceptions=True
                )
                progress.advance(task, len(batch))
        return outcomes
    finally:
        with contextlib.suppress(Exception):  # the outcomes stand however the client closes
            await opened.__aexit__(None, None, None)


async def _confirmed(adapter: Any, client: Any, addresses: list[Address], err: Any) -> bool:
    """Show what truncation removes, partition by partition, and ask before it is sent."""
    plan = await adapter.preview(client, addresses)
    table = Table(title="Kafka deletes a prefix: these records go", title_justify="left",
                  box=box.SIMPLE_HEAD, show_edge=False)  # fmt: skip
    for column in ("topic", "partition", "from offset", "to offset", "records", "kept for"):
        table.add_column(column, no_wrap=True)
    for t in plan:
        last = str(t.up_to - 1) if t.records else "-"
        table.add_row(t.topic, str(t.partition), str(t.log_start), last, str(t.records),
                      t.held_by or "-")  # fmt: skip
    err.print(table)
    total = sum(t.records for t in plan)
    if not total:
        return True  # nothing to remove: the deletion reports what is already gone or kept
    return typer.confirm(f"Remove {total} records?", default=False, err=True)


def _report(
    addresses: list[Address],
    outcomes: Sequence[DeleteResult | MsgdelError],
    as_json: bool,
    dry_run: bool,
) -> None:
    out = _console.console()
    if as_json:
        for address, outcome in zip(addresses, outcomes):
            sys.stdout.write(json.dumps(_as_json(address, outcome)) + "\n")
        return
    title = "dry run: nothing was sent" if dry_run else "msgdel delete"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("address", "target", "semantics", "outcome", "removed"):
        table.add_column(column, no_wrap=column != "outcome")
    counts: Counter[str] = Counter()
    for address, outcome in zip(addresses, outcomes):
        if isinstance(outcome, DeleteResult):
            counts[outcome.outcome.value] += 1
            table.add_row(str(address), outcome.target, outcome.semantics.value,
                          outcome.outcome.value, str(outcome.removed))  # fmt: skip
        else:
            counts["failed"] += 1
            table.add_row(str(address), address.target, "-", f"failed: {outcome}", "-",
                          style="red")  # fmt: skip
    out.print(table)
    out.print(", ".join(f"{name} {n}" for name, n in sorted(counts.items())), soft_wrap=True)


def _as_json(address: Address, outcome: DeleteResult | MsgdelError) -> dict[str, Any]:
    if isinstance(outcome, DeleteResult):
        return {
            "address": str(address), "broker": outcome.broker, "target": outcome.target,
            "ids": list(outcome.ids), "semantics": outcome.semantics.value,
            "outcome": outcome.outcome.value, "removed": outcome.removed,
        }  # fmt: skip
    return {
        "address": str(address), "broker": address.broker, "target": address.target,
        "error": type(outcome).__name__, "message": str(outcome),
        "retryable": outcome.retryable if isinstance(outcome, DeletionFailed) else False,
    }  # fmt: skip
