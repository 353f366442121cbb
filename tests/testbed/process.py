"""A broker process owned by the test run: start, wait until it answers, stop, restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

SETUP_HINT = "run `scripts/setup` (the README's install command) to install the test bed"


class BrokerUnavailable(RuntimeError):
    """A broker of the test bed could not be started; the text says what to run."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def find_executable(name: str, *candidates: str) -> str:
    """The path of ``name`` on PATH or among ``candidates``; ``BrokerUnavailable`` if absent."""
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerUnavailable(f"{name} is not installed: {SETUP_HINT}")


class BrokerProcess:
    """One broker server process. Subclasses say how to run it and how to tell it is ready."""

    name = "broker"
    start_timeout = 60.0
    stop_timeout = 20.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    # -- what subclasses provide ---------------------------------------------------------
    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> Mapping[str, str]:
        return {}

    def ready(self) -> bool:
        """Whether the broker answers; called repeatedly while starting."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Write configuration files before the first start."""

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until it answers; ``BrokerUnavailable`` if it cannot."""
        if self.running:
            return
        self.prepare()
        began = time.monotonic()
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                list(self.command()),
                cwd=self.workdir,
                env={**os.environ, **self.environment()},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            raise BrokerUnavailable(f"{self.name} could not be run ({exc}): {SETUP_HINT}") from exc
        finally:
            log.close()
        deadline = began + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            try:
                if self.ready():
                    self.startup_seconds = time.monotonic() - began
                    return
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise BrokerUnavailable(
            f"{self.name} did not answer within {self.start_timeout:.0f}s; "
            f"last lines of {self.log_path}:\n{self.log_tail()}\n{SETUP_HINT}"
        )

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and its children; a no-op when stopped."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.after_stop()

    def after_stop(self) -> None:
        """Wait until the broker's ports are free again, if a subclass needs it."""

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} running={self.running}>"
