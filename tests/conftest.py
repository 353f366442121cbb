"""Shared by the whole suite: the test bed plugin, and collection by installed backend."""

from __future__ import annotations

import importlib.util

pytest_plugins = ["tests.testbed.plugin"]

# A backend's test modules have its name in their file name; they are collected only where its
# client is installed (each tox env installs one backend's extra). Selecting a backend whose
# client is missing collects no test, and pytest fails the run: nothing is skipped silently.
_CLIENTS = {
    "redis": "redis",
    "rabbit": "aio_pika",
    "kafka": "aiokafka",
    "confluent": "confluent_kafka",
    "nats": "nats",
    "mqtt": "zmqtt",
}

collect_ignore_glob = [
    f"**/*{backend}*.py"
    for backend, module in _CLIENTS.items()
    if importlib.util.find_spec(module) is None
]
