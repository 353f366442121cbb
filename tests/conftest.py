"""Shared by the whole suite: the test bed plugin, and collection and markers by directory.

``tests/<backend>/`` holds everything that needs one backend: the conformance kit subclassed
with that backend's harness, and the backend's own specs. Every test in it gets the backend's
marker, and the directory is collected only where the backend's client is installed (each tox
env installs one backend's extra). Selecting a backend whose client is missing collects no
test, and pytest fails the run: nothing is skipped silently. ``tests/core`` needs no broker.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest_plugins = ["tests.testbed.plugin"]

HERE = Path(__file__).parent

CLIENTS = {
    "redis": "redis",
    "rabbit": "aio_pika",
    "kafka": "aiokafka",
    "confluent": "confluent_kafka",
    "nats": "nats",
    "mqtt": "zmqtt",
}
"""Backend (its directory and marker) -> the client module its extra installs."""

collect_ignore = [
    str(HERE / backend)
    for backend, module in CLIENTS.items()
    if importlib.util.find_spec(module) is None
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/<backend>/`` with that backend, and every other one
    ``core`` (it needs no broker)."""
    for item in items:
        try:
            parts = item.path.relative_to(HERE).parts
        except ValueError:  # outside tests/: the example adapter's own suite
            parts = ()
        backend = parts[0] if parts and parts[0] in CLIENTS else None
        if backend is not None:
            item.add_marker(getattr(pytest.mark, backend))
        elif not any(item.get_closest_marker(b) for b in CLIENTS):
            item.add_marker(pytest.mark.core)
