"""Apache Kafka 4.x in KRaft mode: a single combined node, and a three-node cluster.

The jars come from Maven Central through ``scripts/setup-kafka`` (pom: ``testbed/kafka/pom.xml``)
and live in ``.testbed/kafka/libs``. Each node formats its storage with Kafka's own storage tool,
then runs ``kafka.Kafka`` with a small heap, tuned to start fast: one partition per topic by
default, replication factor 1 for internal topics on the single node, no initial rebalance delay.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.testbed.process import BrokerProcess, BrokerUnavailable, free_port

ROOT = Path(os.environ.get("MSGDEL_ROOT") or Path(__file__).resolve().parents[2])
LIBS = Path(os.environ.get("MSGDEL_KAFKA_LIBS", ROOT / ".testbed" / "kafka" / "libs"))
LOG_CONFIG = ROOT / "testbed" / "kafka" / "log4j2.yaml"
SETUP_KAFKA_HINT = "run `scripts/setup` (or just `scripts/setup-kafka`) to fetch the Kafka jars"

JVM_OPTIONS = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",  # C1 only: starts faster, plenty for a test broker
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


def kafka_libs() -> Path:
    """The folder of broker jars; ``BrokerUnavailable`` saying what to run when it is missing."""
    if not any(LIBS.glob("kafka_2.13-*.jar")):
        raise BrokerUnavailable(
            f"the Apache Kafka jars are missing from {LIBS}: {SETUP_KAFKA_HINT}"
        )
    return LIBS


def new_cluster_id() -> str:
    """A random KRaft cluster id (a base64url UUID, as ``kafka-storage random-uuid`` prints).

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with ``-``: the storage tool
    would read it as an option and refuse to format (about one id in 64 did).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def metadata_broker_ids(port: int, timeout: float = 2.0) -> list[int]:
    """The broker ids a Metadata request (v1, no topics) to ``127.0.0.1:port`` reports.

    A hand-written request keeps the test bed free of any Kafka client library, and works
    while an async event loop is running (fault tests call ``restart()`` from async tests).
    """
    client_id = b"msgdel-testbed"
    # header v1: api_key=3 (Metadata), api_version=1, correlation_id, client_id; body: topics=[]
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        data = _recv_exact(sock, size)
    correlation_id, count = struct.unpack_from(">ii", data, 0)
    if correlation_id != 7:
        raise ConnectionError("unexpected Metadata response")
    ids, pos = [], 8
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, pos)
        pos += 6 + host_len + 4  # host, port
        (rack_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rack_len, 0)
        ids.append(node_id)
    return ids


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class KafkaServer(BrokerProcess):
    """One Kafka node acting as broker and controller (combined KRaft mode).

    Alone (the default) it is its own single-voter quorum. ``KafkaCluster`` builds three of them
    sharing one ``cluster_id`` and voter list. Ports are chosen once, so ``url`` survives restarts.
    """

    name = "kafka"
    start_timeout = 90.0
    stop_timeout = 30.0
    heap = "512m"

    def __init__(
        self,
        workdir: Path,
        *,
        node_id: int = 1,
        cluster_id: str | None = None,
        controller_port: int | None = None,
        voters: str | None = None,
        expected_brokers: int = 1,
        replication: int = 1,
    ) -> None:
        self.name = f"kafka-{node_id}" if voters else "kafka"
        super().__init__(workdir)
        self.libs = kafka_libs()
        self.node_id = node_id
        self.port = free_port()
        self.controller_port = controller_port or free_port()
        self.cluster_id = cluster_id or new_cluster_id()
        self.voters = voters or f"{node_id}@127.0.0.1:{self.controller_port}"
        self.expected_brokers = expected_brokers
        self.replication = replication
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "server.properties"

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def servers(self) -> list[str]:
        """The bootstrap addresses as a list (FastStream's KafkaBroker takes a list, not a CSV)."""
        return [self.url]

    def properties(self) -> dict[str, str]:
        """The broker configuration, tuned for a fast, small test node."""
        rf = str(self.replication)
        return {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self.voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "group.min.session.timeout.ms": "500",
            "group.consumer.min.session.timeout.ms": "1000",
            "group.consumer.min.heartbeat.interval.ms": "500",
            "auto.create.topics.enable": "true",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.cleaner.threads": "1",
            "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
            "log.cleaner.backoff.ms": "1000",
            "controller.quorum.election.timeout.ms": "1000",
            "controller.quorum.fetch.timeout.ms": "2000",
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            "controlled.shutdown.enable": "true",
            "delete.topic.enable": "true",
        }

    def java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        """Write server.properties and format the storage once (Kafka's storage tool)."""
        self.config_path.write_text(
            "".join(f"{key}={value}\n" for key, value in self.properties().items())
        )
        if (self.data_dir / "meta.properties").exists():
            return
        tool = self.java(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(self.config_path),
            "--ignore-formatted",
        )
        try:
            done = subprocess.run(tool, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BrokerUnavailable(
                f"{self.name}: storage format failed ({exc}); {SETUP_KAFKA_HINT}"
            ) from exc
        if done.returncode != 0:
            raise BrokerUnavailable(
                f"{self.name}: `kafka-storage format` failed:\n{done.stdout}{done.stderr}\n"
                f"{SETUP_KAFKA_HINT}"
            )

    def command(self) -> Sequence[str]:
        return self.java("kafka.Kafka", str(self.config_path))

    def environment(self) -> Mapping[str, str]:
        return {"LOG_DIR": str(self.workdir)}

    def ready(self) -> bool:
        return len(metadata_broker_ids(self.port)) >= self.expected_brokers


class KafkaCluster(BrokerProcess):
    """Three combined broker+controller nodes in one KRaft cluster (replication factor 3).

    ``url`` lists all three bootstrap addresses. ``nodes`` gives each ``KafkaServer`` for fault
    tests (stop one broker, restart it); ``stop()/start()/restart()`` act on the whole cluster.
    """

    name = "kafka-cluster"
    size = 3

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        kafka_libs()
        cluster_id = new_cluster_id()
        controller_ports = [free_port() for _ in range(self.size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(controller_ports))
        self.nodes = [
            KafkaServer(
                self.workdir / f"node{i + 1}",
                node_id=i + 1,
                cluster_id=cluster_id,
                controller_port=port,
                voters=voters,
                expected_brokers=self.size,
                replication=self.size,
            )
            for i, port in enumerate(controller_ports)
        ]
        for node in self.nodes:
            node.heap = "384m"

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    @property
    def servers(self) -> list[str]:
        """The three bootstrap addresses as a list, for FastStream's ``KafkaBroker``."""
        return [node.url for node in self.nodes]

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def node(self, node_id: int) -> KafkaServer:
        """The node whose broker id is ``node_id`` (1, 2 or 3)."""
        return self.nodes[node_id - 1]

    def ready(self) -> bool:
        return all(node.ready() for node in self.nodes)

    def start(self) -> None:
        """Start the stopped nodes together (a quorum needs two) and wait until all answer."""
        began = time.monotonic()
        with ThreadPoolExecutor(self.size) as pool:
            failures = [
                f.exception() for f in [pool.submit(n.start) for n in self.nodes if not n.running]
            ]
        errors = [e for e in failures if e is not None]
        if errors:
            self.stop()
            raise BrokerUnavailable("\n".join(str(e) for e in errors))
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(lambda n: n.stop(), self.nodes))

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(f"--- {n.name}\n{n.log_tail(lines)}" for n in self.nodes)

    def __repr__(self) -> str:
        return f"<KafkaCluster {self.url} running={self.running}>"
