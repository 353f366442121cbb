"""Run ``msgdel demo`` as a user does (``python -m msgdel.cli``, a process of its own) and read
what it printed: its table, the broker's pid and the folder it ran in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs

CLI = [sys.executable, "-m", "msgdel.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
STARTED = re.compile(
    r"^started (?P<server>\S+) (?P<version>\S+) \(pid (?P<pid>\d+)\) .*, in (?P<folder>\S+)$"
)
ROW = re.compile(r"^\s*(?P<label>\S.*?)\s{2,}(?P<before>[\d,]+)?\s+(?P<after>[\d,]+)\s*$")


@attrs.frozen
class DemoRun:
    """A finished ``msgdel demo``: its exit status and what it wrote."""

    returncode: int
    stdout: str
    stderr: str

    def _started(self) -> re.Match[str]:
        for line in self.stdout.splitlines():
            if found := STARTED.match(line):
                return found
        raise AssertionError(f"the demo printed no 'started' line:\n{self.stdout}{self.stderr}")

    @property
    def server(self) -> tuple[str, str]:
        """The broker's executable name and version, as the demo printed them."""
        started = self._started()
        return started["server"], started["version"]

    @property
    def pid(self) -> int:
        return int(self._started()["pid"])

    @property
    def folder(self) -> Path:
        return Path(self._started()["folder"])

    def figures(self) -> dict[str, tuple[int | None, int]]:
        """The table's rows: label -> (before, after); before is None where a row has one."""
        rows = {}
        for line in self.stdout.splitlines():
            if (row := ROW.match(line)) is not None:
                before = row["before"]
                rows[row["label"]] = (
                    None if before is None else int(before.replace(",", "")),
                    int(row["after"].replace(",", "")),
                )
        return rows


def run_demo(*args: str, timeout: float = 120) -> DemoRun:
    """``msgdel demo ARGS...`` to its end."""
    done = subprocess.run(
        [*CLI, "demo", *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )
    return DemoRun(done.returncode, done.stdout, done.stderr)


def interrupt_demo(*args: str, after: str, sig: int = signal.SIGINT, within: float = 60) -> DemoRun:
    """Start ``msgdel demo ARGS...``, send it ``sig`` once a line of its output starts with
    ``after``, and return the run once it has exited."""
    proc = subprocess.Popen(
        [*CLI, "demo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(after):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not seen.wait(within):
            raise AssertionError(f"the demo never printed {after!r}:\n{''.join(lines)}")
        time.sleep(0.3)  # well inside the phase, which lasts seconds
        proc.send_signal(sig)
        proc.wait(within)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    assert proc.stderr is not None
    return DemoRun(proc.returncode, "".join(lines), proc.stderr.read())


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (and is not a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "\nState:\tZ" not in status


def processes_using(folder: Path) -> list[int]:
    """The pids whose command line names ``folder`` (the demo's broker runs in it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(folder) in cmdline and alive(int(entry.name)):
                found.append(int(entry.name))
    return found
