"""Erasure on MQTT (``msgdel.erasure.erase`` with ``RetainedTopics``): the retained messages of
the person's topics are cleared, against the test bed's Mosquitto. Every test reads the broker
afterwards with a raw zmqtt subscriber of its own: the retained messages a new subscriber gets."""

from __future__ import annotations

import uuid
from typing import Any

import zmqtt

from msgdel.erasure import ErasureOutcome, RetainedTopics, erase
from tests.mqtt.helpers import retain, retained


def people_topics() -> tuple[str, dict[str, bytes]]:
    """A fresh prefix and retained messages under it: the person's profile and avatar, and
    another person's profile."""
    prefix = f"msgdel/erase/{uuid.uuid4().hex[:12]}"
    return prefix, {
        f"{prefix}/u42/profile": b"Jane, 1 Main St",
        f"{prefix}/u42/avatar": b"<jpeg>",
        f"{prefix}/u7/profile": f"erase {prefix}/u7/profile too".encode(),
    }


async def test_the_persons_retained_messages_are_cleared_and_anothers_stays(
    mosquitto_server: Any,
) -> None:
    port = mosquitto_server.port
    prefix, messages = people_topics()
    await retain(port, messages)
    mine = [f"{prefix}/u42/profile", f"{prefix}/u42/avatar", f"{prefix}/u42/never-retained"]

    (report,) = await erase(mosquitto_server.url, [RetainedTopics(mine)])

    assert (report.outcome, report.matched, report.removed) == (ErasureOutcome.ERASED, 2, 2)
    assert await retained(port, f"{prefix}/#") == {
        f"{prefix}/u7/profile": messages[f"{prefix}/u7/profile"]
    }


async def test_a_dry_run_finds_the_retained_messages_and_clears_none(
    mosquitto_server: Any,
) -> None:
    port = mosquitto_server.port
    prefix, messages = people_topics()
    await retain(port, messages)

    async with zmqtt.create_client("127.0.0.1", port) as client:
        (report,) = await erase(
            client,
            [RetainedTopics([f"{prefix}/u42/profile", f"{prefix}/u42/avatar"])],
            dry_run=True,
        )

    assert (report.outcome, report.matched, report.removed) == (ErasureOutcome.DRY_RUN, 2, 0)
    assert await retained(port, f"{prefix}/#") == messages


async def test_a_topic_with_nothing_retained_reports_nothing_found(mosquitto_server: Any) -> None:
    prefix, _ = people_topics()

    (report,) = await erase(mosquitto_server.url, [RetainedTopics(f"{prefix}/u42/profile")])

    assert (report.outcome, report.matched) == (ErasureOutcome.NOTHING_FOUND, 0)
    assert "u42" not in report.target  # the topic is shown only as its fingerprint
