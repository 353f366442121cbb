"""Retain and read back messages on the test bed's Mosquitto with a raw client of their own."""

from __future__ import annotations

import asyncio

import zmqtt

QOS1 = zmqtt.QoS.AT_LEAST_ONCE


async def retain(port: int, topic: str, payload: bytes) -> None:
    """Publish ``payload`` to ``topic`` as its retained message (QoS 1: the broker has it)."""
    async with zmqtt.create_client("127.0.0.1", port) as client:
        await client.publish(topic, payload, qos=QOS1, retain=True)


async def retained(port: int, topic: str) -> bytes | None:
    """The retained message a brand-new subscriber receives on ``topic``, if any.

    The broker sends it right after subscribing; waiting two seconds for it keeps a slow
    machine from reading "nothing retained" where a message is.
    """
    async with (
        zmqtt.create_client("127.0.0.1", port) as client,
        client.subscribe(topic, qos=QOS1) as sub,
    ):
        try:
            message = await asyncio.wait_for(sub.get_message(), 2.0)
        except asyncio.TimeoutError:
            return None
        return message.payload if message.retain else None
