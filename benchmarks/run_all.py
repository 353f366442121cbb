"""Run every benchmark, one after the other, and print one table of every figure and its goal.

    .venv/bin/python benchmarks/run_all.py            # the figures to quote (about an hour)
    .venv/bin/python benchmarks/run_all.py --quick    # fewer messages and rounds: a smoke run
    .venv/bin/python benchmarks/run_all.py --only redis_delete nats_delete_many
    .venv/bin/python benchmarks/run_all.py --from-logs /tmp/msgdel-bench-XXXX  # table again

Each benchmark runs as a subprocess (``python -u benchmarks/NAME.py [--quick]``) that starts
its own brokers from the test bed; its output is shown as it comes and kept in
``--logs DIR/NAME.log`` (default: a new temporary folder, named at the end). A benchmark that
runs past ``--timeout`` gets SIGTERM (it stops its brokers), then SIGKILL.

Figure lines. A benchmark ends by printing one line per figure it measured (see
``_common.figure``), and this script collects every line that starts with ``FIGURE ``::

    FIGURE {"figure": "Redis batched middleware vs consume-only app", "value": 0.25,
            "goal": ">= 0.9", "unit": "x", "low": 0.25, "high": 0.27, "met": false,
            "note": ""}

(one line each). ``figure`` names the figure; ``value`` is its median over the benchmark's
rounds and ``low``/``high`` their range (or null for a single measurement); ``goal`` is
``">= N"``, ``"<= N"``, ``"== N"``, or null for a figure printed for information only;
``met`` says whether the value meets the goal (null without one); ``note`` says how it was
measured where the name does not.

Then it prints the table (benchmark, figure, value and range, goal, met / NOT MET / info; a
benchmark that failed or printed no figure is a row of its own, NOT MET), writes
``figures.json`` into the log folder, and draws the figures that have a goal as a PNG bar
chart (``--png``, default ``docs/performance.png``): each bar is the value as a share of its
goal (for ``<=`` goals, the goal over the value), so the goal line is 1.0 for every figure and
a bar that reaches it met its goal. matplotlib draws it (``pip install --group bench``).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, goal_met, parse_figures

BENCHMARKS = [
    "redis_delete",
    "redis_middleware",
    "redis_other_groups",
    "redis_match_fields",
    "observability_overhead",
    "rabbit_delete_many",
    "nats_delete_many",
    "nats_other_consumers",
    "kafka_delete_many",
    "kafka_other_groups",
    "batcher_memory",
    "redis_soak",
    "redis_cluster",
    "nats_cluster",
    "reaper",
    "erasure",
    "erasure_kafka",
]
"""Every benchmark, in the order they run."""


def run(name: str, quick: bool, logs: Path, timeout: float) -> tuple[int, float]:
    """Run one benchmark, showing and logging its output; its exit code and seconds."""
    command = [sys.executable, "-u", str(ROOT / "benchmarks" / f"{name}.py")]
    if quick:
        command.append("--quick")
    print(f"\n=== {name}: {' '.join(command[2:])}", flush=True)
    began = time.monotonic()
    with (logs / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

        def stop() -> None:
            print(f"=== {name}: past {timeout:.0f} s, stopping it", flush=True)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

        timer = threading.Timer(timeout, stop)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
            code = proc.wait()
        finally:
            timer.cancel()
    seconds = time.monotonic() - began
    print(f"=== {name}: exit {code} after {seconds:.0f} s", flush=True)
    return code, seconds


def collect(name: str, log: Path, code: int | None) -> list[dict[str, Any]]:
    """The figures of one benchmark's log; a NOT MET row if it failed or printed none."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    rows = [dict(row, benchmark=name) for row in parse_figures(text)]
    if code is None:  # rebuilt from logs: the exit code is not known
        code = 0 if rows else 1
    if code != 0 or not rows:
        rows.append({
            "benchmark": name, "figure": f"{name} ran to the end", "value": math.nan,
            "goal": "== 0", "unit": "exit code", "low": None, "high": None, "met": False,
            "note": f"exit code {code}, {len(rows)} figures printed; see {log}",
        })  # fmt: skip
    for row in rows:
        row["met"] = goal_met(float(row["value"]), row["goal"])
    return rows


# -- the table ----------------------------------------------------------------------------------
def number(value: float, unit: str, bare: bool = False) -> str:
    """``value`` in ``unit``, to a precision that fits it (``bare``: without the unit)."""
    if value is None or math.isnan(value):
        return "-"
    if bare:
        return number(value, unit).removesuffix("x").split(" ")[0]
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("us", "ns", "s", "MiB"):
        digits = {"us": 2, "ns": 0, "s": 3, "MiB": 1}[unit]
        return f"{value:,.{digits}f} {unit.replace('us', 'µs')}"
    if abs(value) >= 100:
        return f"{value:,.0f} {unit}"
    return f"{value:.2f} {unit}" if value != int(value) else f"{value:.0f} {unit}"


def shown(row: dict[str, Any]) -> str:
    text = number(row["value"], row["unit"])
    if row.get("low") is not None and row.get("high") is not None:
        low, high = (number(row[k], row["unit"], bare=True) for k in ("low", "high"))
        text += f" ({low}-{high})"
    return text


def status(row: dict[str, Any]) -> str:
    return {True: "met", False: "NOT MET", None: "info"}[row["met"]]


def table(rows: list[dict[str, Any]]) -> str:
    """The figures as a Markdown table."""
    lines = ["| benchmark | figure | value (range over rounds) | goal | |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in rows:
        goal = row["goal"] or ""
        if goal and row["unit"] not in ("x", "per leader"):
            goal += f" {row['unit'].replace('us', 'µs')}"
        elif goal:
            goal += "x" if row["unit"] == "x" else ""
        lines.append(
            f"| {row['benchmark']} | {row['figure']} | {shown(row)} | {goal} | {status(row)} |"
        )
    return "\n".join(lines)


# -- the chart ----------------------------------------------------------------------------------
def share(value: float, goal: str) -> float:
    """``value`` as a share of ``goal``: 1.0 at the goal, above 1.0 where it is met."""
    op, _, text = goal.partition(" ")
    target = float(text)
    if math.isnan(value):
        return 0.0
    if op == ">=":
        return value / target if target else float(value >= 0)
    if op == "<=":
        return target / value if value > 0 else 3.0
    return 1.0 if value == target else (value / target if target else 0.0)


def chart(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Draw each figure that has a goal as a bar: its share of the goal, the goal at 1.0."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit(
            "the chart needs matplotlib: pip install --group bench (or pip install matplotlib); "
            "--no-png skips it"
        ) from None
    goals = [row for row in rows if row["goal"]]
    cap = 3.0
    shares = [min(share(float(r["value"]), r["goal"]), cap) for r in goals]
    height = 0.45 * len(goals) + 1.6
    fig, ax = plt.subplots(figsize=(12, height))
    positions = list(range(len(goals)))[::-1]
    colours = ["#3a923a" if r["met"] else "#c83c3c" for r in goals]
    ax.barh(positions, shares, color=colours, height=0.6)
    for y, row, value in zip(positions, goals, shares):
        right = value
        if row.get("low") is not None and row.get("high") is not None:
            ends = sorted(min(share(float(row[k]), row["goal"]), cap) for k in ("low", "high"))
            ax.plot(ends, [y, y], color="black", linewidth=1)
            right = max(right, ends[1])
        goal = row["goal"] + ("x" if row["unit"] == "x" else f" {row['unit']}")
        ax.text(right + 0.05, y, f"{shown(row)}   goal {goal}".replace("µ", "u"),
                va="center", fontsize=7.5)  # fmt: skip
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1)
    ax.set_yticks(positions)
    ax.set_yticklabels([textwrap.fill(r["figure"], 60) for r in goals], fontsize=8)
    ax.set_xlim(0, cap + 1.6)
    ax.set_xlabel(f"share of the goal (1.0: the goal; '<=' goals: goal / value; capped at "
                  f"{cap:.0f}); whisker: range over rounds")  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    options = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    options.add_argument("--quick", action="store_true", help="fewer messages and rounds")
    options.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME")
    options.add_argument("--skip", nargs="+", choices=BENCHMARKS, metavar="NAME", default=[])
    options.add_argument("--logs", type=Path, help="where to keep the logs (a new temp folder)")
    options.add_argument("--from-logs", type=Path, help="rebuild the table from a run's logs")
    options.add_argument("--timeout", type=float, help="seconds per benchmark (2,700; quick 900)")
    options.add_argument("--png", type=Path, default=ROOT / "docs" / "performance.png")
    options.add_argument("--no-png", action="store_true", help="draw no chart")
    args = options.parse_args()
    names = [n for n in (args.only or BENCHMARKS) if n not in args.skip]
    others = sorted(
        path.stem
        for path in (ROOT / "benchmarks").glob("*.py")
        if not path.stem.startswith("_") and path.stem not in (*BENCHMARKS, "run_all")
    )
    if others:
        print(f"not run (not in run_all.BENCHMARKS): {', '.join(others)}", flush=True)
    timeout = args.timeout or (900.0 if args.quick else 2_700.0)
    rows: list[dict[str, Any]] = []
    if args.from_logs:
        logs = args.from_logs
        args.quick = json.loads((logs / "run.json").read_text())["quick"]
        for name in names:
            if (logs / f"{name}.log").exists():
                rows += collect(name, logs / f"{name}.log", None)
    else:
        logs = args.logs or Path(tempfile.mkdtemp(prefix="msgdel-bench-"))
        logs.mkdir(parents=True, exist_ok=True)
        (logs / "run.json").write_text(json.dumps({"quick": args.quick}))
        for name in names:
            code, _ = run(name, args.quick, logs, timeout)
            rows += collect(name, logs / f"{name}.log", code)
    (logs / "figures.json").write_text(json.dumps(rows, indent=1, default=str))
    kind = "quick run" if args.quick else "full run"
    print(f"\n## Every figure against its goal ({kind}, {time.strftime('%Y-%m-%d')})\n")
    print(table(rows))
    counted = [r for r in rows if r["goal"]]
    met = sum(bool(r["met"]) for r in counted)
    print(f"\n{met} of {len(counted)} goals met; logs and figures.json in {logs}")
    if not args.no_png:
        chart(rows, args.png, f"msgdel benchmarks ({kind}, {time.strftime('%Y-%m-%d')}): "
              f"{met} of {len(counted)} goals met")  # fmt: skip
        print(f"chart: {args.png}")


if __name__ == "__main__":
    main()
