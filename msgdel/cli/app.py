"""The `msgdel` typer application: one module per subcommand, registered here.

A subcommand is a plain function in its own module (`adapters.py`, `delete.py`, `demo.py`);
adding one is an import and an `app.command(...)` line below.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from msgdel.cli import _console, adapters, delete, demo, erase, reap

# click's UsageError (every bad argument), whether typer depends on click (typer < 0.27) or
# ships its own copy of it
_UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)


class _Commands(TyperGroup):
    """typer's group, with every bad argument reported as one line on standard error
    (`msgdel demo: Invalid value for '--messages' ...`) and exit status 2, in place of
    click's usage block or typer's framed panel."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run() -> Any:
            return super(_Commands, self).main(
                args, prog_name, complete_var, False, windows_expand_args, **extra
            )

        if not standalone_mode:
            return run()
        try:
            status = run()
        except _UsageError as exc:
            message: str = exc.format_message().strip()  # type: ignore[attr-defined]
            if "\n" in message:  # `msgdel` alone, where click puts the help in the error
                exc.show()  # type: ignore[attr-defined]
            elif message:  # (typer prints that help itself and leaves the message empty)
                context = getattr(exc, "ctx", None)
                where = context.command_path if context is not None else "msgdel"
                _console.error(where, f"{message} (see '{where} --help')")
            raise SystemExit(2) from None
        except typer.Abort:
            raise SystemExit(1) from None
        raise SystemExit(status if isinstance(status, int) else 0)


app = typer.Typer(
    cls=_Commands,
    name="msgdel",
    help="Delete consumed FastStream messages at their broker, and see it work.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # the same help whatever typer's default
    pretty_exceptions_enable=False,  # a plain traceback: no local variables (no secrets)
)
app.command("adapters")(adapters.command)
app.command("delete")(delete.command)
app.command("demo")(demo.command)
app.command("erase")(erase.command)
app.command("reap")(reap.command)
