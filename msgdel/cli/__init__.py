"""The `msgdel` command line (the `msgdel[cli]` extra): `msgdel adapters`, `msgdel demo`.

Nothing in msgdel imports this package; `import msgdel` never loads typer or rich. The
console script calls `main`, which says which extra to install when typer or rich is
missing instead of failing with an `ImportError`.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["main"]


def main() -> None:
    """Run the command line; exit with its status (2 for a bad argument, with a one-line
    error naming it)."""
    missing = [name for name in ("typer", "rich") if importlib.util.find_spec(name) is None]
    if missing:
        sys.stderr.write(
            f"msgdel: the command line needs {' and '.join(missing)}: "
            "pip install 'msgdel[cli]' (or 'msgdel[demo]' for `msgdel demo`)\n"
        )
        raise SystemExit(1)
    from msgdel.cli.app import app

    app(prog_name="msgdel")
