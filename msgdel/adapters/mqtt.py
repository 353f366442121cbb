"""MQTT: clear a consumed retained message with an empty retained publish to its topic.

Imports only zmqtt (FastStream 0.7's MQTT client). MQTT stores nothing but the one retained
message per topic, so only a message that arrived as retained can be deleted; any other
message gives `NOT_STORED` / `NOTHING_STORED` and nothing is sent. Messages of
FastStream's in-memory `TestMQTTBroker` give `SKIPPED`.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from typing import Any, cast

try:
    import zmqtt
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("mqtt") from exc

from msgdel import _check
from msgdel.compat import handler_config, under_test_broker
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

__all__ = ["MQTTAdapter"]

BROKER = "mqtt"
DEFAULT_CONCURRENCY = 100

Clear = asyncio.Future["DeletionFailed | None"]
"""A clearing publish: it resolves to None once the broker confirmed it, else to its error."""

_cleared: weakref.WeakKeyDictionary[Any, Clear] = weakref.WeakKeyDictionary()
"""The consumed messages whose retained message this process has cleared, or is clearing:
the future of that clearing publish (None once the broker confirmed it, else its error).

The broker cannot tell whether a topic still retains the message, so this memory is what
keeps a second delete of the same message from clearing the topic again (and so from
reporting `DELETED` twice, or removing a newer retained message). Failed clears are
forgotten: deleting again retries them."""


class MQTTAdapter(BaseAdapter):
    """Clears the retained slot of the topic a consumed retained `MQTTMessage` came from.

    `connection` may be a FastStream `MQTTBroker` or a connected zmqtt client. Without
    one, the adapter publishes through the broker of the FastStream handler that is running.
    `qos` is the QoS of the clearing publish (default 1: the broker confirms it).

    MQTT messages have no broker id: a result's `target` is the topic and its `ids` are
    `(topic,)`, the address of the retained slot. Deleting a message this process already
    cleared gives `ALREADY_GONE` and sends nothing.

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
        if not isinstance(qos, zmqtt.QoS):
            raise TypeError(
                f"qos must be a zmqtt.QoS (for example zmqtt.QoS.AT_LEAST_ONCE), got {qos!r}"
            )
        self.connection = connection
        self.qos = qos
        self.concurrency = _check.at_least("concurrency", concurrency, 1)

    def __repr__(self) -> str:
        return f"MQTTAdapter(qos={int(self.qos)})"

    async def delete_many(self, messages: Sequence[Any], /) -> list[DeleteResult | MsgdelError]:
        """Clear each retained topic once, however many of its messages are given.

        One entry per message, in input order; topics are cleared concurrently under
        `concurrency`. A message that is not a delivered MQTT message gets `NotDeletable`;
        a clear that fails (or a broker that is not connected) fails only the messages that
        needed it: live messages and ones already cleared still get their results.
        """
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(messages)
        raws: list[Any] = []
        for index, message in enumerate(messages):
            raw = getattr(message, "raw_message", None)
            if not isinstance(raw, zmqtt.Message):
                outcomes[index] = NotDeletable(
                    f"this {type(message).__name__} holds no delivered MQTT message "
                    "(raw_message); only a message an MQTT broker delivered can be deleted"
                )
            raws.append(raw)
        # Which messages need a clearing publish now, one per client and topic in first-seen
        # order: messages of two brokers (one Batcher shared by two apps) stay apart.
        clears: dict[tuple[int, str], Clear] = {}
        clients: dict[tuple[int, str], Any] = {}
        owners: dict[int, Clear] = {}  # index -> its clear
        earlier: dict[int, Clear] = {}  # this very message: cleared, or being cleared
        loop = asyncio.get_running_loop()
        for index, message in enumerate(messages):
            if outcomes[index] is not None:
                continue
            raw = raws[index]
            try:
                client, unreachable = self._client(message), None
            except MsgdelError as exc:
                client, unreachable = None, exc
            if client is None and unreachable is None:  # FastStream's in-memory test broker
                outcomes[index] = self._result(raw, Outcome.SKIPPED)
            elif not raw.retain:
                outcomes[index] = self._result(raw, Outcome.NOTHING_STORED)
            elif (prior := _usable(_cleared.get(message), loop)) is not None:
                earlier[index] = prior
            elif unreachable is not None:
                outcomes[index] = unreachable
            else:
                key = (id(client), raw.topic)
                pending = clears.get(key)
                if pending is None:
                    pending = clears[key] = loop.create_future()
                    clients[key] = client
                owners[index] = _cleared[message] = pending

        if clears:
            limit = asyncio.Semaphore(self.concurrency)

            async def clear(key: tuple[int, str], done: Clear) -> None:
                async with limit:
                    error = await self._clear(clients[key], key[1])
                if not done.done():
                    done.set_result(error)

            try:
                await asyncio.gather(*(clear(k, f) for k, f in clears.items()))
            finally:
                self._settle(messages, owners, clears)

        first: set[int] = set()  # the clears whose first message was reported
        for index, done in owners.items():
            raw = raws[index]
            error = done.result()
            if error is not None:
                outcomes[index] = error
            elif id(done) in first:  # a later message of a topic this call cleared
                outcomes[index] = self._result(raw, Outcome.ALREADY_GONE)
            else:
                first.add(id(done))
                outcomes[index] = self._result(raw, Outcome.DELETED, removed=1)
        for index, prior in earlier.items():
            error = await asyncio.shield(prior)
            gone = self._result(raws[index], Outcome.ALREADY_GONE)
            outcomes[index] = gone if error is None else error
        return cast("list[DeleteResult | MsgdelError]", outcomes)  # every entry is set

    @staticmethod
    def _settle(
        messages: Sequence[Any],
        owners: dict[int, Clear],
        clears: dict[tuple[int, str], Clear],
    ) -> None:
        """Resolve every clear of this call (also when it was cancelled) and forget the
        messages whose clear failed, so that deleting them again retries."""
        for (_, topic), done in clears.items():
            if not done.done():
                done.set_result(
                    DeletionFailed(
                        f"clearing the retained message of {topic!r} was cancelled; whether "
                        "the broker cleared it is unknown: deleting again is safe",
                        retryable=True,
                    )
                )
        for index, done in owners.items():
            if done.result() is not None and _cleared.get(messages[index]) is done:
                del _cleared[messages[index]]

    def _result(self, raw: zmqtt.Message, outcome: Outcome, removed: int = 0) -> DeleteResult:
        semantics = Semantics.EXACT if raw.retain else Semantics.NOT_STORED
        return DeleteResult(BROKER, raw.topic, (raw.topic,), semantics, outcome, removed)

    async def _clear(self, client: Any, topic: str) -> DeletionFailed | None:
        """Publish the empty retained message to `topic`: None, or why it failed."""
        try:
            await client.publish(topic, b"", qos=self.qos, retain=True)
        except zmqtt.MQTTDisconnectedError as exc:
            return DeletionFailed(
                f"could not clear the retained message of {topic!r}: the MQTT connection is "
                "down; the retained message is still stored. Retry once it reconnects.",
                retryable=True,
                cause=exc,
            )
        except (zmqtt.MQTTError, OSError, asyncio.TimeoutError) as exc:
            return DeletionFailed(
                f"could not clear the retained message of {topic!r}: {exc!r}",
                retryable=isinstance(exc, zmqtt.MQTTTimeoutError | asyncio.TimeoutError),
                cause=exc,
            )
        except Exception as exc:
            return DeletionFailed(
                f"could not clear the retained message of {topic!r}: {exc!r}; whether the "
                "broker cleared it is unknown",
                retryable=False,
                cause=exc,
            )
        return None

    def _client(self, message: Any) -> Any | None:
        """The zmqtt client to publish with; `None` under FastStream's test broker."""
        source = self.connection
        config = getattr(source, "config", None) if source is not None else handler_config(message)
        if config is not None:
            if under_test_broker(config):
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


def _usable(clear: Clear | None, loop: asyncio.AbstractEventLoop) -> Clear | None:
    """An earlier clear of a message, if it succeeded or is still running on this loop."""
    if clear is None:
        return None
    if clear.done():
        return clear if clear.result() is None else None
    return clear if clear.get_loop() is loop else None
