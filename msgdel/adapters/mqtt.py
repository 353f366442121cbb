"""MQTT: clear a consumed retained message with an empty retained publish to its topic.

Imports only zmqtt (FastStream 0.7's MQTT client). MQTT stores nothing but the one retained
message per topic, so only a message that arrived as retained can be deleted; any other
message gives ``NOT_STORED`` / ``NOTHING_STORED`` and nothing is sent. Messages of
FastStream's in-memory ``TestMQTTBroker`` give ``SKIPPED``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import zmqtt

from msgdel.compat import handler_config, is_test_double
from msgdel.errors import DeletionFailed, UnsupportedDeletion
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

__all__ = ["MQTTAdapter"]

BROKER = "mqtt"
DEFAULT_CONCURRENCY = 100


class MQTTAdapter(BaseAdapter):
    """Clears the retained slot of the topic a consumed retained ``MQTTMessage`` came from.

    ``connection`` may be a FastStream ``MQTTBroker`` or a connected zmqtt client. Without
    one, the adapter publishes through the broker of the FastStream handler that is running.
    ``qos`` is the QoS of the clearing publish (default 1: the broker confirms it).

    The broker keeps one retained message per topic and cannot compare versions: if a newer
    retained message replaced the consumed one, clearing removes the newer one.
    """

    features = Features(BROKER, Semantics.EXACT)

    def __init__(
        self,
        connection: Any = None,
        *,
        qos: zmqtt.QoS = zmqtt.QoS.AT_LEAST_ONCE,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.connection = connection
        self.qos = qos
        self.concurrency = concurrency

    def __repr__(self) -> str:
        return f"MQTTAdapter(qos={int(self.qos)})"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult]:
        """Clear each retained topic once, however many of its messages are given.

        Results come in input order; topics are cleared concurrently under ``concurrency``.
        """
        raws: list[zmqtt.Message] = [m.raw_message for m in messages]
        if not raws:
            return []
        client = self._client()
        if client is None:
            return [self._result(r, Outcome.SKIPPED) for r in raws]
        topics = list(dict.fromkeys(r.topic for r in raws if r.retain))
        limit = asyncio.Semaphore(self.concurrency)

        async def clear(topic: str) -> None:
            async with limit:
                await self._clear(client, topic)

        if topics:
            await asyncio.gather(*(clear(t) for t in topics))
        results: list[DeleteResult] = []
        cleared: set[str] = set()
        for raw in raws:
            if not raw.retain:
                results.append(self._result(raw, Outcome.NOTHING_STORED, Semantics.NOT_STORED))
            elif raw.topic in cleared:
                results.append(self._result(raw, Outcome.ALREADY_GONE))
            else:
                cleared.add(raw.topic)
                results.append(self._result(raw, Outcome.DELETED, removed=1))
        return results

    def _result(
        self,
        raw: zmqtt.Message,
        outcome: Outcome,
        semantics: Semantics = Semantics.EXACT,
        removed: int = 0,
    ) -> DeleteResult:
        return DeleteResult(BROKER, raw.topic, [], semantics, outcome, removed)

    async def _clear(self, client: Any, topic: str) -> None:
        try:
            await client.publish(topic, b"", qos=self.qos, retain=True)
        except zmqtt.MQTTDisconnectedError as exc:
            raise DeletionFailed(
                f"could not clear the retained message of {topic!r}: the MQTT connection is "
                "down; the retained message is still stored. Retry once it reconnects.",
                retryable=True,
                cause=exc,
            ) from exc
        except (zmqtt.MQTTError, OSError, asyncio.TimeoutError) as exc:
            raise DeletionFailed(
                f"could not clear the retained message of {topic!r}: {exc!r}",
                retryable=isinstance(exc, zmqtt.MQTTTimeoutError | asyncio.TimeoutError),
                cause=exc,
            ) from exc

    def _client(self) -> Any | None:
        """The zmqtt client to publish with; ``None`` under FastStream's test broker."""
        source = self.connection
        config = getattr(source, "config", None) if source is not None else handler_config()
        if config is not None:
            if is_test_double(getattr(config, "producer", None)):
                return None
            try:
                return config.client
            except Exception as exc:
                raise DeletionFailed(
                    "the MQTT broker is not connected; connect it before deleting messages",
                    retryable=True,
                    cause=exc,
                ) from exc
        if source is None:
            raise UnsupportedDeletion(
                "MQTT messages do not carry their connection and no FastStream handler is "
                "running: register the adapter with your broker, e.g. "
                "msgdel.register(MQTTMessage, MQTTAdapter(broker), replace=True)"
            )
        return source
