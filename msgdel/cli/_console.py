"""Where the command line writes: rich consoles for standard output and standard error."""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 200
"""Columns of a table written to a pipe or a file (rich would take 80), unless `COLUMNS`
says otherwise: wide enough that a row stays one line for `grep`."""


def console(*, stderr: bool = False) -> Console:
    """A console on the current `sys.stdout` (or `sys.stderr`): colours only on a
    terminal, `PIPE_WIDTH` columns elsewhere; text is printed as it is (no markup, so
    `msgdel[redis]` stays, no emoji codes, no guessed highlights)."""
    out = Console(stderr=stderr, highlight=False, markup=False, emoji=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = PIPE_WIDTH
    return out


class BadArgument(Exception):
    """A wrong argument: reported as one line, exit status 2, nothing sent."""


def error(command_path: str, message: str) -> None:
    """Write `<command_path>: <message>` (`msgdel demo: ...`) as one line to standard
    error, whatever the width of the terminal."""
    sys.stderr.write(f"{command_path}: {' '.join(message.split())}\n")
    sys.stderr.flush()
