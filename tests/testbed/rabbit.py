"""A private RabbitMQ node from Debian's rabbitmq-server, owned by the test run.

The node has its own node name, AMQP port, Erlang distribution port, epmd (on its own port,
started and stopped here), data, log, config and enabled-plugins files, and its own Erlang
cookie (``HOME`` inside the work dir), so it never touches a system RabbitMQ. No plugin is
enabled: the management plugin alone would double the start-up time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.testbed.process import (
    BrokerProcess,
    BrokerUnavailable,
    find_executable,
    free_port,
    port_open,
)

SERVER_CANDIDATES = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/sbin/rabbitmq-server")

# The Erlang applications a node without plugins loads. Debian ships ~70 applications in the
# plugins folder; with all of them on the code path (Erlang 25 has no code path cache) and
# all their config schemas read at boot, the node takes several seconds longer to start.
CORE_APPS = frozenset({
    "amqp10_common", "aten", "credentials_obfuscation", "cuttlefish", "enough",
    "gen_batch_server", "jsx", "observer_cli", "osiris", "ra", "rabbit", "rabbit_common",
    "rabbitmq_prelaunch", "ranch", "recon", "seshat", "stdout_formatter", "syslog",
    "sysmon_handler", "systemd",
})  # fmt: skip

# Loopback only, guest allowed (it is loopback anyway), no disk or memory alarm that would
# block publishers on a nearly full CI disk, and quiet file logs. Written in the classic
# Erlang-terms format: the node then skips the cuttlefish schema translation at boot.
CONFIG = """\
[{{rabbit, [
    {{tcp_listeners, [{{"127.0.0.1", {port}}}]}},
    {{loopback_users, []}},
    {{disk_free_limit, 1}},
    {{vm_memory_high_watermark, 0.9}},
    {{log, [{{file, [{{level, warning}}]}}, {{console, [{{enabled, false}}]}}]}}
]}}].
"""


def _server_executable() -> str:
    """The rabbitmq-server start script itself (not the wrapper that switches user)."""
    for candidate in SERVER_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return os.path.realpath(candidate)
    return os.path.realpath(find_executable("rabbitmq-server"))


def _slim_home(real_home: Path, into: Path) -> Path:
    """A RabbitMQ home whose ``plugins`` folder links only :data:`CORE_APPS`.

    ``sbin`` links to the real scripts; RabbitMQ derives its home from the scripts folder's
    logical path, so the node loads its code from the slim plugins folder.
    """
    into.mkdir(exist_ok=True)
    for name in ("sbin", "escript"):
        link = into / name
        if not link.exists():
            link.symlink_to(real_home / name)
    plugins = into / "plugins"
    plugins.mkdir(exist_ok=True)
    for app in (real_home / "plugins").iterdir():
        if app.name.rsplit("-", 1)[0] in CORE_APPS and not (plugins / app.name).exists():
            (plugins / app.name).symlink_to(app)
    return into


class RabbitServer(BrokerProcess):
    """A private RabbitMQ node; its data dir survives ``restart()`` (durable queues too)."""

    name = "rabbit"
    slim = True
    """Load only :data:`CORE_APPS` (see :func:`_slim_home`); False runs the stock home."""
    start_timeout = 60.0
    stop_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.real_home = Path(_server_executable()).parent.parent
        self.rabbit_home = self.workdir / "rabbitmq-home"
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"msgdel-{self.port}@localhost"
        self.home = self.workdir / "home"
        self._epmd: subprocess.Popen[bytes] | None = None

    # -- configuration ---------------------------------------------------------------------
    def prepare(self) -> None:
        for folder in ("home", "mnesia", "log"):
            (self.workdir / folder).mkdir(exist_ok=True)
        (self.workdir / "rabbitmq.config").write_text(CONFIG.format(port=self.port))
        (self.workdir / "enabled_plugins").write_text("[].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")
        cookie = self.home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(f"MSGDELTESTBED{self.port}")
            cookie.chmod(0o400)
        if self.slim:
            _slim_home(self.real_home, self.rabbit_home)
        self._start_epmd()

    def environment(self) -> Mapping[str, str]:
        w = self.workdir
        home = self.rabbit_home if self.slim else self.real_home
        return {
            "HOME": str(self.home),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.config"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_SCRIPTS_DIR": str(home / "sbin"),
            "RABBITMQ_PLUGINS_DIR": str(home / "plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(w / "plugins-expand"),
            "RABBITMQ_PID_FILE": str(w / "rabbit.pid"),
            # The distribution port listens on loopback only, like everything else here.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def command(self) -> Sequence[str]:
        home = self.rabbit_home if self.slim else self.real_home
        return [str(home / "sbin" / "rabbitmq-server")]

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    # -- readiness ---------------------------------------------------------------------------
    def ready(self) -> bool:
        """True once an AMQP connection (handshake and login) opens."""
        if not port_open(self.port):
            return False
        # aio-pika needs an event loop; start() may run inside a test's loop, so use a thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self._connect_once()).result(timeout=10)

    async def _connect_once(self) -> bool:
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=5)
        await connection.close()
        return True

    # -- epmd --------------------------------------------------------------------------------
    def _start_epmd(self) -> None:
        """Run this node's own epmd as our child, so ``stop()`` can end it."""
        if self._epmd is not None and self._epmd.poll() is None:
            return
        epmd = find_executable("epmd")
        self._epmd = subprocess.Popen(
            [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.epmd_port):
            if self._epmd.poll() is not None or time.monotonic() > deadline:
                raise BrokerUnavailable(f"epmd did not start on port {self.epmd_port}")
            time.sleep(0.02)

    def _stop_epmd(self) -> None:
        epmd, self._epmd = self._epmd, None
        if epmd is None or epmd.poll() is not None:
            return
        epmd.terminate()
        try:
            epmd.wait(5)
        except subprocess.TimeoutExpired:
            epmd.kill()
            epmd.wait()

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the node cleanly (SIGTERM to the start script only, which runs a graceful
        shutdown), kill whatever of its process group is left, then end its epmd."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(self.stop_timeout)
        super().stop()  # SIGKILLs the group if the graceful stop did not finish
        with contextlib.suppress(ProcessLookupError):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)
        self._stop_epmd()

    def after_stop(self) -> None:
        deadline = time.monotonic() + 10
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)
