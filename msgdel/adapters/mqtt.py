"""MQTT: clear a consumed retained message with an empty retained publish to its topic.

Imports only zmqtt (FastStream 0.7's MQTT client). MQTT stores nothing but the one retained
message per topic, so only a message that arrived as retained can be deleted; any other
message gives `NOT_STORED` / `NOTHING_STORED` and nothing is sent. Messages of
FastStream's in-memory `TestMQTTBroker` give `SKIPPED`.

By address ([`msgdel.delete_at`][msgdel.delete_at] with a
[`RetainedTopic`][msgdel.address.RetainedTopic], on an `mqtt://` URL or a connected zmqtt
client), the same clearing publish is sent, but only after the broker showed the topic
retains a message: see [`MQTTAdapter.delete_at`][msgdel.adapters.mqtt.MQTTAdapter.delete_at].
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal, cast

try:
    import zmqtt
except ImportError as exc:  # the extra is not installed
    from msgdel.adapters._extra import missing

    raise missing("mqtt") from exc

from msgdel import _check
from msgdel.address import RetainedTopic
from msgdel.compat import handler_config, under_test_broker
from msgdel.errors import DeletionFailed, MsgdelError, NotDeletable, UnsupportedDeletion, redact
from msgdel.features import Features
from msgdel.protocol import BaseAdapter
from msgdel.result import DeleteResult
from msgdel.semantics import Outcome, Semantics

__all__ = ["MQTTAdapter"]

BROKER = "mqtt"
DEFAULT_CONCURRENCY = 100
DEFAULT_RETAINED_WAIT = 1.0
"""Seconds an address's check waits for the topic's retained message after SUBACK (plus the
subscription's own round trip). Mosquitto sends it about one round trip after SUBACK (its
small writes wait for the SUBACK's TCP acknowledgement), 40-50 ms on loopback."""
CONNECT_TIMEOUT = 5.0
"""Seconds `connect(url)` waits for the connection and the broker's CONNACK."""
_RETRYABLE_REFUSALS = frozenset({3, 0x88, 0x89})
"""CONNACK codes that can change: server unavailable (3.1.1: 3; 5.0: 0x88) or busy (0x89)."""
_OLD_BROKER = frozenset({1, 0x84})
"""CONNACK codes of a broker that does not speak MQTT 5: `connect(url)` then uses 3.1.1."""

Clear = asyncio.Future["MsgdelError | Outcome"]
"""A topic's clear: it resolves to `DELETED` once the broker confirmed the clearing publish,
to `NOTHING_STORED` when an address's check found nothing retained (nothing was sent), else
to its error."""

_cleared: weakref.WeakKeyDictionary[Any, Clear] = weakref.WeakKeyDictionary()
"""The consumed messages whose retained message this process has cleared, or is clearing:
the future of that clearing publish (`DELETED` once the broker confirmed it, else its error).

The broker cannot tell whether a topic still retains the message, so this memory is what
keeps a second delete of the same message from clearing the topic again (and so from
reporting `DELETED` twice, or removing a newer retained message). Failed clears are
forgotten: deleting again retries them."""

_probes: weakref.WeakSet[Any] = weakref.WeakSet()
"""The subscriptions msgdel holds to check a topic for its retained message."""


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

    A [`RetainedTopic`][msgdel.address.RetainedTopic] address is cleared by the same code once
    a check showed the topic retains a message; `retained_wait` bounds that check (see
    [`delete_at`][msgdel.adapters.mqtt.MQTTAdapter.delete_at]).
    """

    features = Features(BROKER, Semantics.EXACT, by_address=True)

    def __init__(
        self,
        connection: Any = None,
        *,
        qos: zmqtt.QoS = zmqtt.QoS.AT_LEAST_ONCE,
        concurrency: int = DEFAULT_CONCURRENCY,
        retained_wait: float = DEFAULT_RETAINED_WAIT,
    ) -> None:
        if not isinstance(qos, zmqtt.QoS):
            raise TypeError(
                f"qos must be a zmqtt.QoS (for example zmqtt.QoS.AT_LEAST_ONCE), got {qos!r}"
            )
        self.connection = connection
        self.qos = qos
        self.concurrency = _check.at_least("concurrency", concurrency, 1)
        self.retained_wait = _check.seconds("retained_wait", retained_wait, positive=True)

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
        clears: dict[tuple[int, str], tuple[Any, Clear]] = {}
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
                    pending = clears[key] = (client, loop.create_future())
                owners[index] = _cleared[message] = pending[1]

        if clears:
            try:
                await self._clear_all(clears, check=False)
            finally:
                for index, done in owners.items():  # a failed clear is retried by a new delete
                    failed = isinstance(done.result(), MsgdelError)
                    if failed and _cleared.get(messages[index]) is done:
                        del _cleared[messages[index]]

        for index, outcome in _spread(owners).items():
            outcomes[index] = (
                outcome if isinstance(outcome, MsgdelError) else self._result(raws[index], *outcome)
            )
        for index, prior in earlier.items():
            error = await asyncio.shield(prior)
            gone = self._result(raws[index], Outcome.ALREADY_GONE)
            outcomes[index] = error if isinstance(error, MsgdelError) else gone
        return cast("list[DeleteResult | MsgdelError]", outcomes)  # every entry is set

    def connect(self, url: str, /) -> contextlib.AbstractAsyncContextManager[zmqtt.MQTTClient]:
        """A zmqtt client for `url` (`mqtt://[user:password@]host[:port]`, `mqtts://` for
        TLS), connected on entry with MQTT 5 (3.1.1 for a broker without it; at most
        `CONNECT_TIMEOUT` seconds, no reconnects) and disconnected on exit. Unreachable:
        [`DeletionFailed`][msgdel.DeletionFailed] (`retryable=True`); refused credentials:
        `retryable=False`; neither text holds the password."""
        return _connected(url)

    async def delete_at(
        self, connection: Any, addresses: Sequence[Any], /
    ) -> list[DeleteResult | MsgdelError]:
        """Clear the retained message of each [`RetainedTopic`][msgdel.address.RetainedTopic]
        on the connected zmqtt client `connection`: one entry per address, in input order,
        topics checked and cleared concurrently under `concurrency`.

        An address, unlike a consumed message, does not say whether its topic retains a
        message, so each topic is first checked at the broker: the client subscribes to the
        exact topic (QoS 0), waits for the retained message the broker sends after SUBACK (at
        most `retained_wait` seconds plus the subscription's round trip), and unsubscribes.
        A retained message: the topic is cleared with the empty retained publish of
        [`delete_many`][msgdel.adapters.mqtt.MQTTAdapter.delete_many] (`DELETED`). None within
        the wait: `NOTHING_STORED`, nothing is published. A retained message published between
        the check and the clear is cleared too (MQTT has no conditional clear).

        A client that already subscribes to a filter matching the topic is refused for that
        topic ([`UnsupportedDeletion`][msgdel.UnsupportedDeletion], nothing sent): the check's
        subscription would take that subscription's messages while it lasts, and see no
        retained message of its own. A check the broker refuses (not authorised) fails with
        `DeletionFailed`, nothing published. On an MQTT 3.1.1 connection a broker acknowledges
        even a publish it refuses, so only MQTT 5 (what `connect(url)` uses) reports a clear
        the broker's access rules refused."""
        if not isinstance(connection, zmqtt.MQTTClient):
            kind = type(connection)
            raise UnsupportedDeletion(
                f"{self!r} deletes addresses on a connected zmqtt.MQTTClient "
                f"(zmqtt.create_client(...)) or an mqtt:// URL, got "
                f"{kind.__module__}.{kind.__qualname__}; nothing was sent"
            )
        outcomes: list[DeleteResult | MsgdelError | None] = [None] * len(addresses)
        clears: dict[tuple[int, str], tuple[Any, Clear]] = {}
        owners: dict[int, Clear] = {}
        loop = asyncio.get_running_loop()
        for index, address in enumerate(addresses):
            if not isinstance(address, RetainedTopic):
                outcomes[index] = UnsupportedDeletion(
                    f"{self!r} deletes RetainedTopic addresses, not {address!r}; nothing was sent"
                )
                continue
            key = (id(connection), address.topic)
            pending = clears.get(key)
            if pending is None:
                pending = clears[key] = (connection, loop.create_future())
            owners[index] = pending[1]
        if clears:
            await self._clear_all(clears, check=True)
        for index, outcome in _spread(owners).items():
            if isinstance(outcome, MsgdelError):
                outcomes[index] = outcome
            else:
                topic = addresses[index].topic
                outcomes[index] = DeleteResult(
                    BROKER, topic, (topic,), Semantics.EXACT, outcome[0], outcome[1]
                )
        return cast("list[DeleteResult | MsgdelError]", outcomes)  # every entry is set

    async def _clear_all(
        self, clears: dict[tuple[int, str], tuple[Any, Clear]], check: bool
    ) -> None:
        """Clear every topic of `clears` on its client, at most `concurrency` at once, and
        resolve its future; with `check`, only a topic the broker shows retains a message.
        Every future is resolved on return, also when this call is cancelled."""
        limit = asyncio.Semaphore(self.concurrency)

        async def clear(client: Any, topic: str, done: Clear) -> None:
            async with limit:
                outcome = await self._clear_topic(client, topic, check)
            if not done.done():
                done.set_result(outcome)

        try:
            await asyncio.gather(*(clear(c, k[1], f) for k, (c, f) in clears.items()))
        finally:
            for (_, topic), (_, done) in clears.items():
                if not done.done():
                    done.set_result(
                        DeletionFailed(
                            f"clearing the retained message of {topic!r} was cancelled; "
                            "whether the broker cleared it is unknown: deleting again is safe",
                            retryable=True,
                        )
                    )

    async def _clear_topic(self, client: Any, topic: str, check: bool) -> MsgdelError | Outcome:
        """Clear `topic` (with `check`, only if it retains a message): `DELETED`,
        `NOTHING_STORED` (nothing sent), or why not."""
        if check:
            try:
                retained = await self.retains(client, topic)
            except MsgdelError as exc:
                return exc
            except Exception as exc:
                return DeletionFailed(
                    f"could not check {topic!r} for a retained message: {exc!r}; nothing was "
                    "published",
                    retryable=False,
                    cause=exc,
                )
            if not retained:
                return Outcome.NOTHING_STORED
        error = await self._clear(client, topic)
        return Outcome.DELETED if error is None else error

    async def retains(self, client: zmqtt.MQTTClient, topic: str) -> bool:
        """Whether the broker holds a retained message for `topic` now: it sends it to a new
        subscription right after SUBACK. Waits at most `retained_wait` seconds plus the
        subscription's round trip; unsubscribes before returning."""
        overlapping = [
            subscription
            for subscription in list(getattr(client, "_subscriptions", ()))  # zmqtt keeps them
            if any(zmqtt.topic_matches(f, topic) for f in getattr(subscription, "_filters", ()))
        ]
        if overlapping and all(s in _probes for s in overlapping):
            raise DeletionFailed(
                f"another msgdel call is checking {topic!r} for its retained message on this "
                "client; nothing was sent: retry once it finished",
                retryable=True,
            )
        if overlapping:
            filters = sorted({f for s in overlapping for f in getattr(s, "_filters", ())})
            raise UnsupportedDeletion(
                f"this zmqtt client already subscribes to {', '.join(map(repr, filters))}, which "
                f"matches {topic!r}: checking the topic for its retained message on this client "
                "would take that subscription's messages while it lasts. Nothing was sent; pass "
                "an mqtt:// URL, or a client without such a subscription"
            )
        what = f"check {topic!r} for a retained message"
        subscription = client.subscribe(topic, qos=zmqtt.QoS.AT_MOST_ONCE)
        _probes.add(subscription)
        loop = asyncio.get_running_loop()
        try:
            began = loop.time()
            async with subscription:  # SUBSCRIBE, SUBACK; UNSUBSCRIBE on the way out
                now = loop.time()
                deadline = now + self.retained_wait + (now - began)
                while (left := deadline - loop.time()) > 0:
                    try:
                        message = await asyncio.wait_for(subscription.get_message(), left)
                    except asyncio.TimeoutError:
                        return False
                    if message.retain:  # a live publish to the topic arrives without the flag
                        return True
                return False
        except zmqtt.MQTTSubscribeError as exc:
            raise DeletionFailed(
                f"could not {what}: the broker refused the subscription ({exc}); nothing was "
                "published",
                retryable=False,
                cause=exc,
            ) from exc
        except (zmqtt.MQTTError, OSError) as exc:
            raise _failure(what, exc, "nothing was published") from exc

    def _result(self, raw: zmqtt.Message, outcome: Outcome, removed: int = 0) -> DeleteResult:
        semantics = Semantics.EXACT if raw.retain else Semantics.NOT_STORED
        return DeleteResult(BROKER, raw.topic, (raw.topic,), semantics, outcome, removed)

    async def _clear(self, client: Any, topic: str) -> DeletionFailed | None:
        """Publish the empty retained message to `topic`: None, or why it failed."""
        try:
            await client.publish(topic, b"", qos=self.qos, retain=True)
        except (zmqtt.MQTTError, OSError, asyncio.TimeoutError) as exc:
            return _failure(
                f"clear the retained message of {topic!r}",
                exc,
                "the retained message is still stored",
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
        return None if isinstance(clear.result(), MsgdelError) else clear
    return clear if clear.get_loop() is loop else None


def _spread(owners: dict[int, Clear]) -> dict[int, MsgdelError | tuple[Outcome, int]]:
    """Each owner's (outcome, removed), or its clear's error, from resolved clears: the first
    owner of a clear that removed a message reports it, the later ones `ALREADY_GONE`."""
    first: set[int] = set()  # the clears whose first owner was reported
    spread: dict[int, MsgdelError | tuple[Outcome, int]] = {}
    for index, done in owners.items():
        outcome = done.result()
        if isinstance(outcome, MsgdelError) or outcome is not Outcome.DELETED:
            spread[index] = outcome if isinstance(outcome, MsgdelError) else (outcome, 0)
        elif id(done) in first:  # a later message of a topic this call cleared
            spread[index] = (Outcome.ALREADY_GONE, 0)
        else:
            first.add(id(done))
            spread[index] = (Outcome.DELETED, 1)
    return spread


def _failure(what: str, exc: BaseException, still: str) -> DeletionFailed:
    """A zmqtt error meeting `what` as a `DeletionFailed` that says whether to retry."""
    if isinstance(exc, zmqtt.MQTTDisconnectedError):
        return DeletionFailed(
            f"could not {what}: the MQTT connection is down; {still}. Retry once it reconnects.",
            retryable=True,
            cause=exc,
        )
    return DeletionFailed(
        f"could not {what}: {exc!r}",
        retryable=isinstance(exc, zmqtt.MQTTTimeoutError | asyncio.TimeoutError),
        cause=exc,
    )


@contextlib.asynccontextmanager
async def _connected(url: str) -> AsyncIterator[zmqtt.MQTTClient]:
    """A zmqtt client for `url`, connected (no reconnects) and disconnected on exit."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise DeletionFailed(
            f"{redact(url)!r} is not an MQTT URL: write it as mqtt://[user:password@]host[:port]"
            "; nothing was sent",
            retryable=False,
        )
    tls = parts.scheme == "mqtts"

    def client(version: Literal["3.1.1", "5.0"]) -> zmqtt.MQTTClient:
        return zmqtt.MQTTClient(
            str(parts.hostname),
            port or (8883 if tls else 1883),
            username=urllib.parse.unquote(parts.username) if parts.username else None,
            password=urllib.parse.unquote(parts.password) if parts.password else None,
            tls=tls,
            reconnect=zmqtt.ReconnectConfig(enabled=False),
            mqtt_connect_timeout=CONNECT_TIMEOUT,
            version=version,
        )

    opened = client("5.0")  # MQTT 5: a broker that refuses the clearing publish says so
    try:
        try:
            await asyncio.wait_for(opened.__aenter__(), CONNECT_TIMEOUT)
        except zmqtt.MQTTConnectError as exc:
            if exc.return_code not in _OLD_BROKER:
                raise
            opened = client("3.1.1")
            await asyncio.wait_for(opened.__aenter__(), CONNECT_TIMEOUT)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await opened.__aexit__(None, None, None)
        retryable = not isinstance(exc, zmqtt.MQTTConnectError) or (
            exc.return_code in _RETRYABLE_REFUSALS
        )
        advice = (
            "retrying is safe" if retryable else "retrying with the same credentials cannot succeed"
        )
        raise DeletionFailed(
            f"could not connect to the MQTT broker at {redact(url)} ({redact(repr(exc))}); "
            f"nothing was sent, {advice}",
            retryable=retryable,
            cause=exc,
        ) from exc
    try:
        yield opened
    finally:
        await opened.__aexit__(None, None, None)
