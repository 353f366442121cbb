"""Redis Cluster for the test bed: three masters with one replica each, on loopback ports.

Six ``redis-server --cluster-enabled yes`` processes, each in its own folder; the masters
are joined with ``redis-cli --cluster create`` (Debian's redis-cli, Redis 7, creates Redis
8.2 clusters too), and each replica is attached to its own master with ``CLUSTER
REPLICATE``, so a replica runs the same Redis as its master (a Redis 7 replica cannot load
an 8.2 master's data). ``cluster-node-timeout`` is short (1 s) so a failed node is noticed
quickly; the specs promote a replica themselves (:meth:`RedisClusterServers.failover`).

And a Redis Sentinel set (:class:`RedisSentinelSet`): one master, two replicas and three
``redis-server --sentinel`` processes, each told of the others in its configuration file so
that nothing waits for their discovery.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.testbed.process import BrokerProcess, BrokerUnavailable, find_executable, free_port
from tests.testbed.redis import SYSTEM_REDIS, RedisServer, redis8_executable

SYSTEM_REDIS_CLI = "/usr/bin/redis-cli"
NODE_TIMEOUT_MS = 1000


def _raw_call(port: int, *args: Any) -> Any:
    """The raw reply of the server on ``port`` to ``args`` (redis-py's reply parsers left out)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)
    client.response_callbacks.clear()
    try:
        return client.execute_command(*args)
    finally:
        client.close()


class ReplicatedServer(RedisServer):
    """A redis-server that syncs a new replica at once (not after the default 5 s wait for
    more replicas to share the transfer)."""

    def command(self) -> Sequence[str]:
        return [*super().command(), "--repl-diskless-sync-delay", "0"]


class ClusterNodeServer(ReplicatedServer):
    """One redis-server of a cluster: its own port, cluster bus port, folder and nodes.conf."""

    def __init__(self, workdir: Path, *, executable: str, name: str) -> None:
        super().__init__(workdir, executable=executable, name=name)
        self.bus_port = free_port()

    def command(self) -> Sequence[str]:
        return [
            *super().command(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-port", str(self.bus_port),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--cluster-require-full-coverage", "no",
        ]  # fmt: skip

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def node_id(self) -> str:
        return str(_raw_call(self.port, "CLUSTER MYID").decode())


class RedisClusterServers(BrokerProcess):
    """Three masters and a replica of each (``nodes[i + 3]`` replicates ``nodes[i]`` when
    created); ``executables`` says which redis-server each master and its replica run."""

    name = "redis-cluster"
    start_timeout = 30.0

    def __init__(self, workdir: Path, *, executables: Sequence[str], name: str) -> None:
        self.name = name
        super().__init__(workdir)
        if len(executables) != 3:
            raise ValueError("a test bed cluster has three masters")
        self.nodes = [
            ClusterNodeServer(self.workdir / f"node{i}", executable=exe, name=f"{name}-{i}")
            for i, exe in enumerate([*executables, *executables])
        ]
        self._created = False

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return any(node.running for node in self.nodes)

    @property
    def url(self) -> str:
        """A URL of one master: a cluster client finds the others from it."""
        return self.nodes[0].url

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", node.port) for node in self.nodes]

    def start(self) -> None:
        began = time.monotonic()
        for node in self.nodes:
            self._start_node(node)
        if not self._created:
            self._create()
            self._created = True
        self.wait_healthy()
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def _start_node(self, node: ClusterNodeServer) -> None:
        """Start ``node``; before the cluster is created, on new ports if another process
        took one of its ports meanwhile (they are free when chosen, not reserved)."""
        for attempt in range(3):
            try:
                node.start()
                return
            except BrokerUnavailable:
                if self._created or attempt == 2 or "in use" not in node.log_tail():
                    raise
                node.port, node.bus_port = free_port(), free_port()

    def _create(self) -> None:
        masters, replicas = self.nodes[:3], self.nodes[3:]
        cli = find_executable("redis-cli", SYSTEM_REDIS_CLI)
        done = subprocess.run(
            [cli, "--cluster", "create", *(m.address for m in masters), "--cluster-yes"],
            capture_output=True,
            timeout=self.start_timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerUnavailable(
                f"redis-cli --cluster create failed:\n{done.stdout.decode()[-2000:]}"
                f"{done.stderr.decode()[-2000:]}"
            )
        ids = [m.node_id() for m in masters]
        for replica in replicas:
            self._call(replica, "CLUSTER MEET", "127.0.0.1", masters[0].port, masters[0].bus_port)
        for replica, master_id in zip(replicas, ids):
            self._until(lambda r=replica, m=master_id: m in self._nodes_text(r), "MEET")
            self._call(replica, "CLUSTER REPLICATE", master_id)

    def wait_healthy(self, within: float | None = None) -> None:
        """Wait until every running node has the whole slot map, agrees with the others on
        it, and every replica has finished syncing from its master."""
        self._until(self.healthy, "a healthy cluster", within)

    def healthy(self) -> bool:
        running = [n for n in self.nodes if n.running]
        replicas = 0
        for node in running:
            replication = self._call(node, "INFO", "replication").decode()
            if "role:slave" in replication:
                replicas += 1
                if (
                    "master_link_status:up" not in replication
                    or "master_sync_in_progress:0" not in replication
                ):
                    return False
        maps = set()
        for node in running:
            if "cluster_state:ok" not in self._call(node, "CLUSTER INFO").decode():
                return False
            maps.add(tuple(sorted(self._slot_owners(node).items())))
            lines = [line.split() for line in self._nodes_text(node).splitlines()]
            seen = sum("slave" in p[2] and p[3] != "-" and "fail" not in p[2] for p in lines)
            if seen != replicas:
                return False
        return len(maps) == 1

    # -- what the specs ask --------------------------------------------------------------
    def owner(self, key: str) -> ClusterNodeServer:
        """The master that holds ``key``'s slot now."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        live = next(n for n in self.nodes if n.running)
        for (first, last), port in self._slot_owners(live).items():
            if first <= slot <= last:
                return self._by_port(port)
        raise LookupError(f"no node holds slot {slot}")

    def masters(self) -> list[ClusterNodeServer]:
        """The running masters that hold slots."""
        live = next(n for n in self.nodes if n.running)
        ports = sorted(set(self._slot_owners(live).values()))
        return [self._by_port(port) for port in ports if self._by_port(port).running]

    def replica_of(self, master: ClusterNodeServer) -> ClusterNodeServer:
        master_id = master.node_id()
        live = next(n for n in self.nodes if n.running)
        for line in self._nodes_text(live).splitlines():
            parts = line.split()
            if len(parts) > 3 and parts[3] == master_id and "slave" in parts[2]:
                return self._by_port(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
        raise LookupError(f"{master.address} has no replica")

    def keys_by_master(self, prefix: str, per_master: int) -> dict[int, list[str]]:
        """``per_master`` fresh key names of ``prefix`` on each master, by master port."""
        from redis.crc import key_slot

        live = next(n for n in self.nodes if n.running)
        ranges = list(self._slot_owners(live).items())
        found: dict[int, list[str]] = {}
        n = 0
        while len(found) < len(set(p for _, p in ranges)) or any(
            len(v) < per_master for v in found.values()
        ):
            key = f"{prefix}-{n}"
            n += 1
            slot = key_slot(key.encode())
            port = next(p for (a, b), p in ranges if a <= slot <= b)
            if len(found.setdefault(port, [])) < per_master:
                found[port].append(key)
        return found

    def failover(self, replica: ClusterNodeServer) -> None:
        """Promote ``replica`` at once (``CLUSTER FAILOVER TAKEOVER``: its master is down)
        and wait until every running node routes its master's slots to it."""
        self._call(replica, "CLUSTER FAILOVER", "TAKEOVER")
        self._until(
            lambda: all(
                replica.port in self._slot_owners(n).values() for n in self.nodes if n.running
            ),
            f"{replica.address} promoted",
        )

    def move_slot_of(self, key: str, target: ClusterNodeServer, *, finish: bool = True) -> None:
        """Reshard ``key``'s slot to the master ``target``, its keys with it (``SETSLOT
        IMPORTING/MIGRATING``, ``MIGRATE``, ``SETSLOT NODE``), and wait until every running
        node routes the slot there. With ``finish=False`` stop once the keys have moved: the
        slot is still the old master's, which answers ``ASK`` for them (:meth:`finish_move`)."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        source = self.owner(key)
        source_id, target_id = source.node_id(), target.node_id()
        self._call(target, "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        self._call(source, "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        while keys := self._call(source, "CLUSTER GETKEYSINSLOT", slot, 100):
            self._call(source, "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
        if finish:
            self.finish_move(key, target)

    def finish_move(self, key: str, target: ClusterNodeServer) -> None:
        """Give ``key``'s slot, its keys migrated already, to ``target`` on every master."""
        from redis.crc import key_slot

        slot = key_slot(key.encode())
        source = self.owner(key)
        target_id = target.node_id()
        for node in [target, source, *(m for m in self.masters() if m not in (source, target))]:
            self._call(node, "CLUSTER SETSLOT", slot, "NODE", target_id)

        def routed() -> bool:
            for node in self.nodes:
                if node.running:
                    owners = self._slot_owners(node)
                    if next(p for (a, b), p in owners.items() if a <= slot <= b) != target.port:
                        return False
            return True

        self._until(routed, f"slot {slot} on {target.address}")

    def settle(self) -> None:
        """Start every stopped node again (an old master rejoins as its successor's
        replica) and wait until the cluster is healthy."""
        for node in self.nodes:
            self._start_node(node)
        self.wait_healthy()

    # -- helpers -------------------------------------------------------------------------
    def _by_port(self, port: int) -> ClusterNodeServer:
        return next(n for n in self.nodes if n.port == port)

    @staticmethod
    def _call(node: ClusterNodeServer, *args: Any) -> Any:
        return _raw_call(node.port, *args)

    def _nodes_text(self, node: ClusterNodeServer) -> str:
        reply = self._call(node, "CLUSTER NODES")
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def _slot_owners(self, node: ClusterNodeServer) -> dict[tuple[int, int], int]:
        """Slot ranges and the port of the master holding each, as ``node`` sees them."""
        owners = {}
        for line in self._nodes_text(node).splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2].replace("fail?", ""):
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            for part in parts[8:]:
                if part.startswith("["):
                    continue  # a slot being migrated
                first, _, last = part.partition("-")
                owners[(int(first), int(last or first))] = port
        return owners

    def _until(self, predicate: Callable[[], bool], what: str, within: float | None = None) -> None:
        deadline = time.monotonic() + (within or self.start_timeout)
        while time.monotonic() < deadline:
            try:
                if predicate():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        tails = "\n".join(f"{n.name}:\n{n.log_tail(10)}" for n in self.nodes)
        raise BrokerUnavailable(f"{self.name}: no {what} within the time allowed\n{tails}")

    def ready(self) -> bool:
        return self.healthy()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(node.log_tail(lines // 6 or 1) for node in self.nodes)


def redis7_cluster(workdir: Path) -> RedisClusterServers:
    exe = find_executable(SYSTEM_REDIS)
    return RedisClusterServers(workdir, executables=[exe] * 3, name="redis7-cluster")


def redis8_cluster(workdir: Path) -> RedisClusterServers:
    exe = redis8_executable()
    return RedisClusterServers(workdir, executables=[exe] * 3, name="redis8-cluster")


def mixed_redis_cluster(workdir: Path) -> RedisClusterServers:
    """A cluster mid-upgrade: the first master (and its replica) on Redis 7, two on 8.2."""
    seven, eight = find_executable(SYSTEM_REDIS), redis8_executable()
    return RedisClusterServers(workdir, executables=[seven, eight, eight], name="mixed-cluster")


SENTINEL_MASTER = "msgdel"
"""The name the test bed's sentinels monitor their master under."""


class SentinelServer(BrokerProcess):
    """One ``redis-server --sentinel`` on loopback, its own port and writable config file."""

    start_timeout = 20.0

    def __init__(self, workdir: Path, *, executable: str, name: str) -> None:
        self.name = name
        super().__init__(workdir)
        self.executable = executable
        self.port = free_port()
        self.myid = secrets.token_hex(20)
        self.config = self.workdir / "sentinel.conf"
        self.known: list[str] = []  # what the configuration says it knows already

    def prepare(self) -> None:
        if not self.config.exists():  # a sentinel rewrites it with what it learns
            lines = [
                f"port {self.port}",
                "bind 127.0.0.1",
                "protected-mode no",
                f"dir {self.workdir}",
                f"sentinel myid {self.myid}",
                *self.known,
            ]
            self.config.write_text("\n".join(lines) + "\n")

    def command(self) -> Sequence[str]:
        return [self.executable, str(self.config), "--sentinel"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return bool(_raw_call(self.port, "PING"))


class RedisSentinelSet(BrokerProcess):
    """One master, two replicas and three sentinels that monitor them (quorum 2, the master
    seen down after 1 s); every server runs ``executable``."""

    name = "redis-sentinel"
    start_timeout = 30.0

    def __init__(self, workdir: Path, *, executable: str, name: str) -> None:
        self.name = name
        super().__init__(workdir)
        self.servers = [
            ReplicatedServer(self.workdir / f"redis{i}", executable=executable, name=f"{name}-{i}")
            for i in range(3)
        ]
        self.sentinels = [
            SentinelServer(
                self.workdir / f"sentinel{i}", executable=executable, name=f"{name}-sentinel-{i}"
            )
            for i in range(3)
        ]
        # Each sentinel is told of the master, its replicas and the other sentinels up front,
        # instead of discovering them (hello messages every 2 s).
        master, replicas = self.servers[0], self.servers[1:]
        for sentinel in self.sentinels:
            sentinel.known = [
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master.port} 2",
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} 1000",
                f"sentinel failover-timeout {SENTINEL_MASTER} 10000",
                *(f"sentinel known-replica {SENTINEL_MASTER} 127.0.0.1 {r.port}" for r in replicas),
                *(
                    f"sentinel known-sentinel {SENTINEL_MASTER} 127.0.0.1 {o.port} {o.myid}"
                    for o in self.sentinels
                    if o is not sentinel
                ),
            ]
        self._created = False

    @property
    def running(self) -> bool:
        return any(p.running for p in [*self.servers, *self.sentinels])

    @property
    def url(self) -> str:
        return self.sentinels[0].url

    @property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", s.port) for s in self.sentinels]

    def start(self) -> None:
        began = time.monotonic()
        for server in self.servers:
            server.start()
        if not self._created:
            master = self.servers[0]
            for replica in self.servers[1:]:
                _raw_call(replica.port, "REPLICAOF", "127.0.0.1", master.port)
            self._created = True
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_healthy()
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        for process in [*self.sentinels, *self.servers]:
            process.stop()

    def master(self) -> RedisServer:
        """The server every sentinel names as the master now."""
        ports = set()
        for sentinel in self.sentinels:
            if sentinel.running:
                _, port = _raw_call(
                    sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER
                )
                ports.add(int(port))
        if len(ports) != 1:
            raise LookupError(f"the sentinels disagree on the master: {sorted(ports)}")
        return next(s for s in self.servers if s.port in ports)

    def healthy(self) -> bool:
        """Every sentinel agrees on a running master, knows the two other sentinels and the
        running replicas, and every running replica has synced from the master."""
        master = self.master()
        if not master.running or "role:master" not in self._info(master):
            return False
        replicas = [s for s in self.servers if s.running and s is not master]
        for replica in replicas:
            info = self._info(replica)
            if f"master_port:{master.port}" not in info or "master_link_status:up" not in info:
                return False
        for sentinel in self.sentinels:
            others = _raw_call(sentinel.port, "SENTINEL", "SENTINELS", SENTINEL_MASTER)
            if len(others) != 2:
                return False
        return True

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                if self.healthy():
                    return
            except Exception:
                pass
            time.sleep(0.05)
        tails = "\n".join(f"{p.name}:\n{p.log_tail(8)}" for p in [*self.servers, *self.sentinels])
        raise BrokerUnavailable(f"{self.name}: not healthy within the time allowed\n{tails}")

    def failover_from(self, master: RedisServer) -> RedisServer:
        """Have the sentinels promote a replica in place of the stopped ``master`` at once
        (``SENTINEL FAILOVER``, not waiting to agree that it is down) and wait until it
        is the master; the new master."""
        with contextlib.suppress(Exception):  # one may be under way already
            _raw_call(self.sentinels[0].port, "SENTINEL", "FAILOVER", SENTINEL_MASTER)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            try:
                new = self.master()
                if new is not master and "role:master" in self._info(new):
                    return new
            except Exception:
                pass
            time.sleep(0.05)
        raise BrokerUnavailable(f"{self.name}: no replica promoted within the time allowed")

    def settle(self) -> None:
        """Start every stopped server again as a replica of the master (as the sentinels
        would make it, later) and wait until the set is healthy."""
        master = self.master()
        for server in self.servers:
            if not server.running:
                server.start()
                _raw_call(server.port, "REPLICAOF", "127.0.0.1", master.port)
        self.wait_healthy()

    @staticmethod
    def _info(server: RedisServer) -> str:
        return str(_raw_call(server.port, "INFO", "replication").decode())

    def ready(self) -> bool:
        return self.healthy()


def redis7_sentinel(workdir: Path) -> RedisSentinelSet:
    return RedisSentinelSet(
        workdir, executable=find_executable(SYSTEM_REDIS), name="redis7-sentinel"
    )


def redis8_sentinel(workdir: Path) -> RedisSentinelSet:
    return RedisSentinelSet(workdir, executable=redis8_executable(), name="redis8-sentinel")
