"""`msgdel adapters`: which adapter deletes which FastStream message class, as a table.

The rows are what `msgdel.delete` would use in a fresh process: the built-in adapters (with
whether their extra is installed) and the adapters that installed distributions register
through the `msgdel.adapters` entry points.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from importlib.metadata import entry_points

import attrs
from rich import box
from rich.table import Table

from msgdel.adapters import BUILTINS
from msgdel.cli import _console
from msgdel.features import Features
from msgdel.protocol import Deletable
from msgdel.registry import ENTRY_POINT_GROUP, Registry
from msgdel.semantics import Outcome

MISSING = "missing"


@attrs.frozen
class Row:
    """One message class and what deletes it; `features` is None where the adapter could
    not be loaded (its extra is missing, or its entry point failed: `problem` says)."""

    message_class: str
    adapter: str
    features: Features | None
    source: str
    """The msgdel extra of a built-in adapter (`redis`), or `entry point <name>`."""
    problem: str | None = None
    failed: bool = False
    """An entry point that failed to load or run."""


def rows() -> list[Row]:
    """Every built-in message class, then every entry point's registrations.

    A class that an entry point registers is listed under the entry point only: its
    registration replaces the built-in one."""
    from_entry_points = list(_entry_point_rows())
    replaced = {row.message_class for row in from_entry_points}
    return [r for r in _builtin_rows() if r.message_class not in replaced] + from_entry_points


def _builtin_rows() -> Iterator[Row]:
    registry = Registry()
    try:
        loaded = {_qualname(t): adapter for t, adapter in registry}  # imports installed ones
    finally:
        asyncio.run(registry.aclose())
    for name, builtin in BUILTINS.items():
        adapter = loaded.get(name)
        if adapter is not None:
            yield Row(name, type(adapter).__name__, adapter.features, builtin.extra)
        elif importlib.util.find_spec(builtin.client) is None:
            yield Row(name, builtin.factory, None, builtin.extra, MISSING)
        else:  # the client is there, but this FastStream has no such class (0.6 has no MQTT)
            yield Row(name, builtin.factory, None, builtin.extra, "not in this FastStream")


def _entry_point_rows() -> Iterator[Row]:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        source = f"entry point {ep.name}"
        registry = Registry(builtins=False)
        try:
            ep.load()(registry)  # the documented contract: a callable (registry) -> None
            pairs: list[tuple[type, Deletable]] = list(registry)
        except Exception as exc:
            yield Row("?", ep.value, None, source, f"failed: {exc!r}", failed=True)
            continue
        for message_type, adapter in pairs:
            yield Row(_qualname(message_type), type(adapter).__name__, adapter.features, source)


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def describe_features(features: Features) -> str:
    """What an adapter declares beyond its broker and semantics: the flags that are set
    (`acknowledges, coalesces`), and what a repeated delete reports where that is not
    `already_gone`."""
    shown = [
        field.name
        for field in attrs.fields(Features)
        if field.type in (bool, "bool") and getattr(features, field.name) is True
    ]
    if features.repeat is not Outcome.ALREADY_GONE:
        shown.append(f"repeat: {features.repeat.value}")
    return ", ".join(shown) or "-"


def table(found: list[Row]) -> Table:
    """The rows as a rich table: one line per message class on a wide enough console."""
    out = Table(title="msgdel adapters", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    out.add_column("message class", no_wrap=True)
    out.add_column("adapter", no_wrap=True)
    out.add_column("broker", no_wrap=True)
    out.add_column("semantics", no_wrap=True)
    out.add_column("features", no_wrap=True)
    out.add_column("extra")
    for row in found:
        features = row.features
        if features is None:
            style = "red" if row.failed else "dim"
            problem = "failed, see below" if row.failed else row.problem
            out.add_row(
                row.message_class, row.adapter, "-", "-", "-", f"{row.source}: {problem}",
                style=style,
            )  # fmt: skip
        else:
            ep = row.source.startswith("entry point")
            installed = row.source if ep else f"{row.source}: installed"
            out.add_row(
                row.message_class,
                row.adapter,
                features.broker,
                features.semantics.value,
                describe_features(features),
                installed,
            )
    return out


def hints(found: list[Row]) -> list[str]:
    """One `pip install` line per extra whose broker client is missing, and one line per
    entry point that failed, with its error."""
    missing = sorted({row.source for row in found if row.problem == MISSING})
    failed = [f"{row.source} ({row.adapter}) {row.problem}" for row in found if row.failed]
    return [f"{extra}: pip install 'msgdel[{extra}]'" for extra in missing] + failed


def command() -> None:
    """List the message classes msgdel deletes, their adapters and what each declares.

    Built-in adapters (with whether their extra is installed) and those of entry points.
    Exit status 1 when an entry point failed to load.
    """
    import typer

    found = rows()
    out = _console.console()
    out.print(table(found))
    for hint in hints(found):
        out.print(hint, soft_wrap=True)
    if any(row.failed for row in found):
        raise typer.Exit(1)
