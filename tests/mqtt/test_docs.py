"""The MQTT page's examples run as written against the test bed's Mosquitto.

Each example gets the broker by ``MQTT_URL``, as a user would; a raw subscriber of its own
reads back which retained messages the broker still holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("faststream.mqtt", reason="FastStream 0.6 has no MQTT support")


from tests.default_registry import fresh_default_registry
from tests.docs_blocks import example, printed
from tests.eventually import eventually
from tests.mqtt.helpers import retain, retained

CONFIGS = "devices/+/config"
"""The topics the examples read."""


@pytest.fixture
async def mqtt(mosquitto_server: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The test bed's Mosquitto as ``MQTT_URL``, holding no retained config before or after."""
    monkeypatch.setenv("MQTT_URL", mosquitto_server.url)
    port = mosquitto_server.port

    async def clear() -> None:
        await retain(port, dict.fromkeys(await retained(port, CONFIGS), b""))

    await clear()
    yield mosquitto_server
    await clear()


async def test_the_example_clears_the_retained_config_it_handled(
    mqtt: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    await retain(mqtt.port, {"devices/1/config": b"on"})
    lines: list[str] = []

    def count() -> int:
        lines.extend(printed(capsys.readouterr().out))
        return len(lines)

    with example("docs/examples/mqtt_retained.py") as app_module:
        await app_module.app.start()
        try:
            await eventually(count, 2)
        finally:
            await app_module.app.stop()
    assert lines == [  # as the page says: the clearing publish comes back, live
        "Outcome.DELETED devices/1/config",
        "Outcome.NOTHING_STORED devices/1/config",
    ]
    assert await retained(mqtt.port, CONFIGS) == {}


async def test_the_outside_a_handler_example_clears_the_retained_message(
    mqtt: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = fresh_default_registry(monkeypatch)  # the example registers on the default
    await retain(mqtt.port, {"devices/2/config": b"off", "devices/3/status": b"up"})
    try:
        with example("docs/examples/mqtt_outside_handler.py") as program:
            await program.main()
    finally:
        await registry.aclose()
    assert printed(capsys.readouterr().out) == ["Outcome.DELETED devices/2/config"]
    assert await retained(mqtt.port, "devices/#") == {"devices/3/status": b"up"}
    await retain(mqtt.port, {"devices/3/status": b""})
